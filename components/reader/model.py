"""The span reader: MiniLM over [question; per context: visual tokens, text tokens], a span head.

Sequence: ``[CLS] question [SEP] (v_1..v_m  text-pieces [SEP]) × k``. Visual tokens are the
contexts' refined cell vectors, projected into MiniLM's embedding space and put in place of
the word embeddings at their positions (MiniLM still adds position and segment embeddings).
The head gives start and end logits; an answer is a span of text pieces inside one context,
mapped back to whole words; "no answer" is the [CLS] position (SQuAD 2.0 style) and wins when
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
    """One question's reader input; ``piece_word`` / ``piece_ctx`` map text pieces back to words."""

    input_ids: list[int]
    token_type_ids: list[int]
    visual: np.ndarray  # [n_visual, D]
    visual_positions: list[int]
    piece_ctx: list[int]  # context index per position, -1 for question / specials / visual
    piece_word: list[int]  # word index within its context, -1 elsewhere
    words: list[list[str]]
    start: int = IGNORE
    end: int = IGNORE
    extra: dict = field(default_factory=dict)


def encode(
    tokenizer, question: str, contexts: list[Context], p: ReaderParams, cell_dim: int,
    answer: tuple[int, int, int] | None = None, supervise: bool = False,
) -> Encoded:
    """Tokenise one question with its contexts. ``answer`` = (context, first word, last word).

    Each context's text is cut to ``max_context_tokens`` pieces by query-oriented line selection
    (``text_window``). With ``supervise``, start/end are the answer's pieces, or 0 ([CLS], "no
    answer") when no answer is given or the selection dropped part of it.
    """
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    placeholder = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
    q_ids = tokenizer(question, add_special_tokens=False, truncation=True,
                      max_length=p.max_question_tokens)["input_ids"]
    ids = [cls, *q_ids, sep]
    types = [0] * len(ids)
    piece_ctx, piece_word = [-1] * len(ids), [-1] * len(ids)
    visual, visual_pos = [], []
    start = end = 0 if supervise else IGNORE
    stems = question_stems(question)
    for c, ctx in enumerate(contexts):
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
            if answer is not None and supervise and answer[0] == c:
                wanted = [i for i, w in enumerate(all_word_ids) if answer[1] <= w <= answer[2]]
                if wanted and set(wanted) <= set(kept):  # only a wholly kept answer is a target
                    start, end = offset + kept.index(wanted[0]), offset + kept.index(wanted[-1])
        ids.append(sep)
        types.append(1)
        piece_ctx.append(-1)
        piece_word.append(-1)
    vis = np.stack(visual).astype(np.float32) if visual else np.zeros((0, cell_dim), np.float32)
    return Encoded(ids, types, vis, visual_pos, piece_ctx, piece_word,
                   [ctx.words for ctx in contexts], start, end)


def collate(batch: list[Encoded], pad_id: int, cell_dim: int) -> dict[str, torch.Tensor]:
    n, length = len(batch), max(len(e.input_ids) for e in batch)
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    types = torch.zeros((n, length), dtype=torch.long)
    attention = torch.zeros((n, length), dtype=torch.long)
    visual = torch.zeros((n, length, cell_dim), dtype=torch.float32)
    visual_mask = torch.zeros((n, length), dtype=torch.bool)
    span_ok = torch.zeros((n, length), dtype=torch.bool)
    ctx = torch.full((n, length), -1, dtype=torch.long)
    for i, e in enumerate(batch):
        m = len(e.input_ids)
        input_ids[i, :m] = torch.tensor(e.input_ids)
        types[i, :m] = torch.tensor(e.token_type_ids)
        attention[i, :m] = 1
        if e.visual_positions:
            visual[i, e.visual_positions] = torch.from_numpy(e.visual)
            visual_mask[i, e.visual_positions] = True
        ctx[i, :m] = torch.tensor(e.piece_ctx)
        span_ok[i, :m] = ctx[i, :m] >= 0
        span_ok[i, 0] = True  # [CLS] = "no answer"
    return {
        "input_ids": input_ids, "token_type_ids": types, "attention_mask": attention,
        "visual": visual, "visual_mask": visual_mask, "span_ok": span_ok, "ctx": ctx,
        "start": torch.tensor([e.start for e in batch]), "end": torch.tensor([e.end for e in batch]),
    }


class SpanReader(nn.Module):
    def __init__(self, p: ReaderParams, text_model: nn.Module, tokenizer, text_info: TextEncoderInfo,
                 cell_dim: int):
        super().__init__()
        self.params, self.tokenizer, self.text_info, self.cell_dim = p, tokenizer, text_info, cell_dim
        self.encoder = text_model
        hidden = text_model.config.hidden_size
        self.visual_proj = nn.Sequential(nn.Linear(cell_dim, hidden), nn.LayerNorm(hidden))
        self.span_head = nn.Linear(hidden, 2)
        layers = list(text_model.encoder.layer)
        trainable = layers[len(layers) - p.finetune_layers:] if p.finetune_layers else []
        for param in text_model.parameters():
            param.requires_grad = False
        for layer in trainable:
            for param in layer.parameters():
                param.requires_grad = True

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        words = self.encoder.get_input_embeddings()(batch["input_ids"])
        visual = self.visual_proj(batch["visual"].to(words.dtype))
        embeds = torch.where(batch["visual_mask"].unsqueeze(-1), visual, words)
        states = self.encoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                              token_type_ids=batch["token_type_ids"]).last_hidden_state
        logits = self.span_head(states)
        masked = logits.masked_fill(~batch["span_ok"].unsqueeze(-1), torch.finfo(logits.dtype).min)
        return masked[..., 0], masked[..., 1]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        start, end = self(batch)
        return (F.cross_entropy(start, batch["start"], ignore_index=IGNORE)
                + F.cross_entropy(end, batch["end"], ignore_index=IGNORE)) / 2


@dataclass
class ReaderAnswer:
    answer: str  # "" = no answer
    context: int | None  # index of the context the span came from
    score: float
    null_score: float


def decode(start: torch.Tensor, end: torch.Tensor, batch: dict[str, torch.Tensor], encoded: list[Encoded],
           max_answer_words: int) -> list[ReaderAnswer]:
    """Best span per question (same context, start <= end, at most ``max_answer_words`` words) or no answer."""
    out = []
    for i, e in enumerate(encoded):
        s, t = start[i].float(), end[i].float()
        ctx, ok = batch["ctx"][i], batch["span_ok"][i].clone()
        ok[0] = False
        words = torch.tensor(e.piece_word + [-1] * (len(ctx) - len(e.piece_word)))
        pair = s[:, None] + t[None, :]
        valid = (ok[:, None] & ok[None, :] & (ctx[:, None] == ctx[None, :])
                 & torch.triu(torch.ones_like(pair, dtype=torch.bool))
                 & ((words[None, :] - words[:, None]) < max_answer_words))
        null = float(s[0] + t[0])
        if not valid.any():
            out.append(ReaderAnswer("", None, null, null))
            continue
        pair = pair.masked_fill(~valid, float("-inf"))
        flat = int(pair.argmax())
        a, b = divmod(flat, pair.shape[1])
        best = float(pair[a, b])
        if best < null:
            out.append(ReaderAnswer("", None, best, null))
            continue
        c = int(ctx[a])
        w0, w1 = e.piece_word[a], e.piece_word[b]
        out.append(ReaderAnswer(" ".join(e.words[c][w0 : w1 + 1]), c, best, null))
    return out
