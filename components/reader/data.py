"""Reader training data: questions with answers -> (question, k noisy contexts, answer span).

Contexts in training are text-layer blocks (the units the questions' evidence boxes name); at
answer time they are the retrieved regions. Visual tokens come from the index's stored cell
vectors of each page, refined against the question's retriever vector.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from components.config import Params
from components.data.corpus import Corpus
from components.data.layout import blocks_from_words
from components.reader.contexts import make_context
from components.reader.model import Encoded, collate, encode, find_answer
from components.reader.noise import NoiseSpec, Slot, sample_contexts

log = logging.getLogger(__name__)


def rewrite_with_entity(question: str, name: str) -> str:
    from components.rag.two_stage import rewrite_question

    return rewrite_question(question, name)


@dataclass
class ReaderSample:
    question_id: str
    question: str  # image queries: rewritten with the gold entity name (what two-stage retrieval produces)
    answers: list[str]
    page_id: str
    gold: Slot
    hard_pages: list[str]
    query_vec: np.ndarray


def _same_box(a, b) -> bool:
    return a is not None and b is not None and np.allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-4)


class ReaderExamples:
    """Samples of one split and the block pools that contexts and distractors are drawn from."""

    def __init__(self, params: Params, corpus: Corpus, index, retriever, split: str):
        from components.model.encode import encode_queries

        self.params, self.corpus, self.index = params, corpus, index
        self.p, self.grid = params.reader, index.grid
        pages = [pg for pg in corpus.pages_in(split) if index.has_page(pg.id)]
        self.words = {pg.id: [[w.text, *w.box] for w in pg.words] for pg in pages}
        # An imported page carries no layout blocks unless its importer wrote them: group its
        # words as the index does for such pages (RegionIndex.load), else it has no gold block.
        self.blocks: dict[str, list[Slot]] = {
            pg.id: [(pg.id, tuple(b.box)) for b in pg.blocks]
            or [(pg.id, tuple(b.box)) for b in blocks_from_words(pg.id, self.words[pg.id])]
            for pg in pages}
        self.skipped = {"no_answers": 0, "no_gold_page": 0, "no_gold_block": 0}
        raw = []
        for q in corpus.questions_in(split):
            pid = q.page_id
            if not q.answers:
                self.skipped["no_answers"] += 1
                continue
            if pid is None or pid not in self.blocks:
                self.skipped["no_gold_page"] += 1
                continue
            gold = next((s for s in self.blocks[pid] if _same_box(s[1], q.box)), None)
            if gold is None:  # no (matching) box: the block whose text holds the answer
                gold = next((s for s in self.blocks[pid]
                             if find_answer(self._words(s), q.answers) is not None), None)
            if gold is None:
                self.skipped["no_gold_block"] += 1
                continue
            text = rewrite_with_entity(q.question, q.entity) if q.query_image and q.entity else q.question
            raw.append((q, text, gold))
        vectors = encode_queries(retriever, [t for _, t, _ in raw]) if raw else np.zeros((0, index.dim))
        self.samples = [
            ReaderSample(q.id, text, list(q.answers), q.page_id, gold,
                         [h for h in q.hard_negatives if h in self.blocks and h != q.page_id], vec)
            for (q, text, gold), vec in zip(raw, vectors)
        ]
        self.all_slots = [s for slots in self.blocks.values() for s in slots]
        if any(self.skipped.values()):
            log.warning("reader %s: questions skipped %s", split, self.skipped)

    def _words(self, slot: Slot) -> list[str]:
        from components.reader.contexts import reading_order_words

        return reading_order_words(self.words[slot[0]], slot[1])

    def example(self, i: int, spec: NoiseSpec, rng: random.Random, mode: str | None = None) -> Encoded:
        question, contexts, answer = self.contexts_for(i, spec, rng, mode)
        return encode(self.p_tokenizer, question, contexts, self.p, self.index.dim, answer, supervise=True)

    def contexts_for(self, i: int, spec: NoiseSpec, rng: random.Random, mode: str | None = None):
        """(question, k contexts, answer as (context, first word, last word) or None) for sample ``i``."""
        s = self.samples[i]
        same_page = [b for b in self.blocks[s.page_id] if b != s.gold]
        hard = [b for pid in s.hard_pages for b in self.blocks[pid]]
        others = [b for b in self.all_slots if b[0] != s.page_id]
        slots, gold_flags, _ = sample_contexts(s.gold, same_page, hard, others, spec, rng)
        np_rng = np.random.default_rng(rng.getrandbits(32))
        contexts, answer = [], None
        for c, ((pid, box), is_gold) in enumerate(zip(slots, gold_flags)):
            ctx = make_context(pid, box, self.words[pid], self.index.cell_vectors(pid), self.grid,
                               self.p.top_m, mode or self.p.visual_tokens, s.query_vec, rng=np_rng,
                               is_gold=is_gold)
            if is_gold:
                span = find_answer(ctx.words, s.answers)
                if span is not None:
                    answer = (c, *span)
            contexts.append(ctx)
        return s.question, contexts, answer

    p_tokenizer = None  # set by the data module (the reader's tokenizer)


class _NoisyDataset(Dataset):
    def __init__(self, examples: ReaderExamples, spec: NoiseSpec, seed: int, fixed: bool):
        self.examples, self.spec, self.seed, self.fixed = examples, spec, seed, fixed
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.examples.samples)

    def __getitem__(self, i: int) -> Encoded:
        # Validation draws the same contexts every time; training draws fresh noise each epoch.
        rng = random.Random(f"{self.seed}:{i}") if self.fixed else random.Random(self.rng.getrandbits(64))
        return self.examples.example(i, self.spec, rng)


class ReaderDataModule(L.LightningDataModule):
    def __init__(self, params: Params, corpus: Corpus, index, retriever, tokenizer):
        super().__init__()
        p = params.reader
        self.params = params
        self.spec = NoiseSpec(p.contexts, p.noise_rho, p.hard_distractor_share, p.no_answer_fraction)
        self.train_examples = ReaderExamples(params, corpus, index, retriever, "train")
        self.val_examples = ReaderExamples(params, corpus, index, retriever, "val")
        for ex in (self.train_examples, self.val_examples):
            ex.p_tokenizer = tokenizer
        if not self.train_examples.samples:
            raise ValueError(f"no train questions with answers and a gold block in {corpus.root} "
                             f"(skipped: {self.train_examples.skipped})")
        self.pad_id, self.cell_dim = tokenizer.pad_token_id, index.dim

    def counts(self) -> dict[str, int]:
        return {"train_questions": len(self.train_examples.samples),
                "val_questions": len(self.val_examples.samples),
                **{f"train_skipped_{k}": v for k, v in self.train_examples.skipped.items()}}

    def _collate(self, batch: list[Encoded]):
        return {**collate(batch, self.pad_id, self.cell_dim), "encoded": batch}

    def train_dataloader(self) -> DataLoader:
        ds = _NoisyDataset(self.train_examples, self.spec, self.params.seed, fixed=False)
        return DataLoader(ds, batch_size=self.params.reader.batch_size, shuffle=True, collate_fn=self._collate)

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_examples.samples:
            return []
        ds = _NoisyDataset(self.val_examples, self.spec, self.params.seed, fixed=True)
        return DataLoader(ds, batch_size=self.params.reader.batch_size, shuffle=False, collate_fn=self._collate)
