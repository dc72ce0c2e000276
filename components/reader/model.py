"""The span reader: MiniLM over [question; one context: visual tokens, text tokens], a span head.

One sequence per context: ``[CLS] question [SEP] v_1..v_m text-pieces [SEP]``, k of them per
question, so each context holds a whole region (hundreds of word pieces) within MiniLM's 512
positions; start/end scores of all k sequences are normalised together (one softmax over the
k contexts' pieces), so the span competes across contexts. Visual tokens are the
contexts' refined cell vectors, projected into MiniLM's embedding space and put in place of
the word embeddings at their positions (MiniLM still adds position and segment embeddings).
The head gives start and end logits; an answer is a span of text pieces inside one context,
mapped back to whole words; "no answer" is the first sequence's [CLS] (SQuAD 2.0 style) and wins when
its score beats the best span's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.config import ReaderParams
from components.model.text_encoder import TextEncoderInfo
from components.reader.contexts import Context
from components.reader.text_window import kept_pieces, question_stems

IGNORE = -100
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


def norm_word(word: str) -> str:
    return _EDGE_PUNCT.sub("", word.lower())


def find_answer(words: list[str], answers: list[str]) -> tuple[int, int] | None:
    """(first, last) word index of the first gold answer found as a word sequence in ``words``."""
    normed = [norm_word(w) for w in words]
    for answer in answers:
        target = [norm_word(w) for w in answer.split() if norm_word(w)]
        n = len(target)
        if not n:
            continue
        for i in range(len(normed) - n + 1):
            if normed[i : i + n] == target:
                return i, i + n - 1
    return None


@dataclass
class Encoded:
    """One question's reader input: one sequence per context, concatenated (flat positions).

    ``seq_starts[c]`` is where context ``c``'s sequence begins in the flat lists; ``start`` /
    ``end`` are flat positions (0 = the first sequence's [CLS], "no answer"). ``piece_ctx`` /
    ``piece_word`` map text pieces back to (context, word), -1 elsewhere. ``text_tokens`` /
    ``visual_tokens`` count what the contexts actually hand the reader (question and specials
    not counted): the token accounting compares these.
    """

    input_ids: list[int]
    token_type_ids: list[int]
    visual: np.ndarray  # [n_visual, D]
    visual_positions: list[int]
    piece_ctx: list[int]
    piece_word: list[int]
    words: list[list[str]]
    seq_starts: list[int] = field(default_factory=lambda: [0])
    start: int = IGNORE
    end: int = IGNORE
    text_tokens: int = 0
    visual_tokens: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.text_tokens + self.visual_tokens


def sequence_length_limit(p: ReaderParams) -> int:
    """Longest sequence one context can make: [CLS] q [SEP] visual text [SEP]."""
    return 3 + p.max_question_tokens + p.top_m + p.max_context_tokens


def encode(
    tokenizer,
    question: str,
    contexts: list[Context],
    p: ReaderParams,
    cell_dim: int,
    answer: tuple[int, int, int] | None = None,
    supervise: bool = False,
) -> Encoded:
    """Tokenise one question with its contexts. ``answer`` = (context, first word, last word).

    Every context is its own sequence ``[CLS] question [SEP] visual text [SEP]`` (the encoder
    reads each context with the question; spans compete across contexts at decoding, shared
    normalisation), so each context can hold ``max_context_tokens`` text pieces, chosen by
    query-oriented line selection (``text_window``) when the region is longer. With
    ``supervise``, start/end are the answer's pieces, or 0 (no answer) when no answer is given
    or the selection dropped part of it.
    """
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and limit < 100_000 and sequence_length_limit(p) > limit:
        raise ValueError(
            f"reader budget {sequence_length_limit(p)} tokens per context (question "
            f"{p.max_question_tokens} + visual {p.top_m} + text {p.max_context_tokens} + 3) "
            f"exceeds the encoder's {limit} positions"
        )
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    placeholder = (
        tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
    )
    q_ids = tokenizer(
        question, add_special_tokens=False, truncation=True, max_length=p.max_question_tokens
    )["input_ids"]
    head = [cls, *q_ids, sep]
    ids, types, piece_ctx, piece_word, seq_starts = [], [], [], [], []
    visual, visual_pos = [], []
    start = end = 0 if supervise else IGNORE
    text_tokens = 0
    stems = question_stems(question)
    for c, ctx in enumerate(contexts or [None]):
        seq_starts.append(len(ids))
        ids.extend(head)
        types.extend([0] * len(head))
        piece_ctx.extend([-1] * len(head))
        piece_word.extend([-1] * len(head))
        if ctx is None:  # no context at all: one sequence whose [CLS] says "no answer"
            continue
        for v in ctx.visual[: p.top_m]:
            visual_pos.append(len(ids))
            visual.append(v)
            ids.append(placeholder)
            types.append(1)
            piece_ctx.append(-1)
            piece_word.append(-1)
        if ctx.words:
            enc = tokenizer(ctx.words, is_split_into_words=True, add_special_tokens=False)
            all_word_ids = enc.word_ids()
            # Query-oriented text refinement: the lines that share the question's words, within budget.
            kept = kept_pieces(ctx.words, ctx.lines(), all_word_ids, stems, p.max_context_tokens)
            offset = len(ids)
            ids.extend(enc["input_ids"][i] for i in kept)
            types.extend([1] * len(kept))
            piece_ctx.extend([c] * len(kept))
            piece_word.extend(all_word_ids[i] for i in kept)
            text_tokens += len(kept)
            if answer is not None and supervise and answer[0] == c:
                wanted = [i for i, w in enumerate(all_word_ids) if answer[1] <= w <= answer[2]]
                if wanted and set(wanted) <= set(kept):  # only a wholly kept answer is a target
                    start, end = offset + kept.index(wanted[0]), offset + kept.index(wanted[-1])
        ids.append(sep)
        types.append(1)
        piece_ctx.append(-1)
        piece_word.append(-1)
    vis = np.stack(visual).astype(np.float32) if visual else np.zeros((0, cell_dim), np.float32)
    return Encoded(
        ids,
        types,
        vis,
        visual_pos,
        piece_ctx,
        piece_word,
        [ctx.words for ctx in contexts] or [[]],
        seq_starts,
        start,
        end,
        text_tokens,
        len(visual_pos),
    )


def _padded_positions(e: Encoded, length: int) -> np.ndarray:
    """Flat position in ``e`` -> position in the padded [k * length] layout."""
    ends = [*e.seq_starts[1:], len(e.input_ids)]
    return np.concatenate(
        [np.arange(b - a) + s * length for s, (a, b) in enumerate(zip(e.seq_starts, ends))]
    )


def collate(batch: list[Encoded], pad_id: int, cell_dim: int) -> dict[str, torch.Tensor]:
    """Pad to [n, k, L] (k contexts, L the longest sequence); span tensors are flat [n, k * L]."""
    n = len(batch)
    k = max(len(e.seq_starts) for e in batch)
    length = max(
        b - a for e in batch for a, b in zip(e.seq_starts, [*e.seq_starts[1:], len(e.input_ids)])
    )
    input_ids = torch.full((n, k * length), pad_id, dtype=torch.long)
    types = torch.zeros((n, k * length), dtype=torch.long)
    attention = torch.zeros((n, k * length), dtype=torch.long)
    visual = torch.zeros((n, k * length, cell_dim), dtype=torch.float32)
    visual_mask = torch.zeros((n, k * length), dtype=torch.bool)
    ctx = torch.full((n, k * length), -1, dtype=torch.long)
    word = torch.full((n, k * length), -1, dtype=torch.long)
    starts, ends = [], []
    for i, e in enumerate(batch):
        pos = torch.from_numpy(_padded_positions(e, length))
        input_ids[i, pos] = torch.tensor(e.input_ids)
        types[i, pos] = torch.tensor(e.token_type_ids)
        attention[i, pos] = 1
        if e.visual_positions:
            vpos = pos[torch.tensor(e.visual_positions)]
            visual[i, vpos] = torch.from_numpy(e.visual)
            visual_mask[i, vpos] = True
        ctx[i, pos] = torch.tensor(e.piece_ctx)
        word[i, pos] = torch.tensor(e.piece_word)
        starts.append(int(pos[e.start]) if e.start >= 0 else e.start)
        ends.append(int(pos[e.end]) if e.end >= 0 else e.end)
    span_ok = ctx >= 0
    span_ok[:, 0] = True  # the first sequence's [CLS] = "no answer"
    shape = (n, k, length)
    return {
        "input_ids": input_ids.view(shape),
        "token_type_ids": types.view(shape),
        "attention_mask": attention.view(shape),
        "visual": visual.view(*shape, cell_dim),
        "visual_mask": visual_mask.view(shape),
        "span_ok": span_ok,
        "ctx": ctx,
        "word": word,
        "start": torch.tensor(starts),
        "end": torch.tensor(ends),
    }


class SpanReader(nn.Module):
    def __init__(
        self,
        p: ReaderParams,
        text_model: nn.Module,
        tokenizer,
        text_info: TextEncoderInfo,
        cell_dim: int,
    ):
        super().__init__()
        self.params, self.tokenizer, self.text_info, self.cell_dim = (
            p,
            tokenizer,
            text_info,
            cell_dim,
        )
        self.encoder = text_model
        hidden = text_model.config.hidden_size
        self.visual_proj = nn.Sequential(nn.Linear(cell_dim, hidden), nn.LayerNorm(hidden))
        self.span_head = nn.Linear(hidden, 2)
        layers = list(text_model.encoder.layer)
        trainable = layers[len(layers) - p.finetune_layers :] if p.finetune_layers else []
        for param in text_model.parameters():
            param.requires_grad = False
        for layer in trainable:
            for param in layer.parameters():
                param.requires_grad = True

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end logits [n, k * L]; each context's sequence is encoded on its own."""
        n, k, length = batch["input_ids"].shape
        attention = batch["attention_mask"].reshape(n * k, length)
        used = attention.sum(1) > 0  # contexts padded in for a shorter question are not encoded
        ids = batch["input_ids"].reshape(n * k, length)[used]
        words = self.encoder.get_input_embeddings()(ids)
        visual = self.visual_proj(batch["visual"].reshape(n * k, length, -1)[used].to(words.dtype))
        mask = batch["visual_mask"].reshape(n * k, length)[used]
        embeds = torch.where(mask.unsqueeze(-1), visual, words)
        states = self.encoder(
            inputs_embeds=embeds,
            attention_mask=attention[used],
            token_type_ids=batch["token_type_ids"].reshape(n * k, length)[used],
        ).last_hidden_state
        logits = states.new_zeros((n * k, length, 2))
        logits[used] = self.span_head(states)
        logits = logits.reshape(n, k * length, 2)
        masked = logits.masked_fill(~batch["span_ok"].unsqueeze(-1), torch.finfo(logits.dtype).min)
        return masked[..., 0], masked[..., 1]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        start, end = self(batch)
        return (
            F.cross_entropy(start, batch["start"], ignore_index=IGNORE)
            + F.cross_entropy(end, batch["end"], ignore_index=IGNORE)
        ) / 2


@dataclass
class ReaderAnswer:
    answer: str  # "" = no answer
    context: int | None  # index of the context the span came from
    score: float
    null_score: float
    text_tokens: int = 0  # text pieces the contexts handed over
    visual_tokens: int = 0  # visual tokens the contexts handed over


def decode(
    start: torch.Tensor,
    end: torch.Tensor,
    batch: dict[str, torch.Tensor],
    encoded: list[Encoded],
    max_answer_words: int,
) -> list[ReaderAnswer]:
    """Best span per question (same context, start <= end, at most ``max_answer_words`` words) or no answer."""
    out = []
    for i, e in enumerate(encoded):
        s, t = start[i].float(), end[i].float()
        ctx, words, ok = batch["ctx"][i], batch["word"][i], batch["span_ok"][i].clone()
        ok[0] = False
        null = float(s[0] + t[0])
        spans = ok.nonzero().squeeze(1)
        if not len(spans):
            out.append(ReaderAnswer("", None, null, null, e.text_tokens, e.visual_tokens))
            continue
        ss, tt, cc, ww = s[spans], t[spans], ctx[spans], words[spans]
        pair = ss[:, None] + tt[None, :]
        valid = (
            (cc[:, None] == cc[None, :])
            & torch.triu(torch.ones_like(pair, dtype=torch.bool))
            & ((ww[None, :] - ww[:, None]) < max_answer_words)
        )
        pair = pair.masked_fill(~valid, float("-inf"))
        flat = int(pair.argmax())
        a, b = divmod(flat, pair.shape[1])
        best = float(pair[a, b])
        if best < null:
            out.append(ReaderAnswer("", None, best, null, e.text_tokens, e.visual_tokens))
            continue
        c, w0, w1 = int(cc[a]), int(ww[a]), int(ww[b])
        out.append(
            ReaderAnswer(
                " ".join(e.words[c][w0 : w1 + 1]), c, best, null, e.text_tokens, e.visual_tokens
            )
        )
    return out
