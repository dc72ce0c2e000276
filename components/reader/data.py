"""Reader training data: questions with answers -> (question, k noisy contexts, answer span).

Questions come from the pipeline's synthetic corpus and, when ``reader.real_train_dir`` holds a
real question set, from real pages (span tasks derived from PDF text layers, ``real_pages``).
Where the k contexts come from is ``reader.train_contexts``:

* ``injected``: the gold unit, other blocks of its page, and ⌊ρk⌉ distractor blocks from
  hard-negative or random other pages (noise injected at rate ρ);
* ``retrieved``: the same, but the distractors are the retriever's own wrong regions for this
  question (its top-k regions that do not hold the evidence), random pages only when it made
  too few mistakes;
* ``top_k``: the retriever's top-k regions as returned; ρ is then measured, not set (a question
  whose evidence was not retrieved trains "no answer").

Retrieval runs for a seeded subset of at most ``reader.max_retrieved_questions`` questions per
example set (its cost bounds the stage); the other questions get injected distractors.

The gold unit is the text-layer block whose box is the question's box, else the question's box
itself when its words hold the answer (real derived questions name a paragraph, entry or
caption), else a block of the gold page whose text holds the answer. Visual tokens come from the
index's cell vectors of each page, refined against the question's retriever vector.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from components.config import Params
from components.data.corpus import Corpus
from components.data.layout import blocks_from_words
from components.reader.contexts import make_context
from components.reader.model import Encoded, collate, encode, find_answer
from components.reader.noise import NoiseSpec, Slot, sample_contexts
from components.text import rewrite_question

CONTEXT_SOURCES = ("injected", "retrieved", "top_k")

log = logging.getLogger(__name__)


@dataclass
class ReaderSample:
    question_id: str
    question: str  # image queries: rewritten with the gold entity name (what two-stage retrieval produces)
    answers: list[str]
    page_id: str
    gold: Slot
    hard_pages: list[str]
    query_vec: np.ndarray
    retrieved: list = field(
        default_factory=list
    )  # the retriever's top-k Regions (when retrieval ran)
    retrieved_gold: list[bool] = field(default_factory=list)  # which of them hold the evidence


def _same_box(a, b) -> bool:
    return (
        a is not None
        and b is not None
        and np.allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-4)
    )


def holds_evidence(page_id: str, box, words: list[str], sample: ReaderSample, evidence_box) -> bool:
    """A context holds the evidence: on the gold page, over the evidence box's centre, answer in its text."""
    if page_id != sample.page_id or find_answer(words, sample.answers) is None:
        return False
    if evidence_box is None:
        return True
    cx, cy = (evidence_box[0] + evidence_box[2]) / 2, (evidence_box[1] + evidence_box[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


class ReaderExamples:
    """Samples of some splits of one corpus and the block pools that contexts and distractors come from.

    ``engine`` (a ``components.retrieval.RegionRetrieval`` over ``index``): when given, each sample
    also keeps the retriever's top-``reader.contexts`` regions and which of them hold the evidence (``retrieved`` sources).
    """

    def __init__(
        self,
        params: Params,
        corpus: Corpus,
        index,
        retriever,
        split: str | tuple[str, ...],
        engine=None,
        source: str = "synthetic",
    ):
        from components.model.encode import encode_queries

        self.params, self.corpus, self.index, self.source = params, corpus, index, source
        self.p, self.grid = params.reader, index.grid
        splits = (split,) if isinstance(split, str) else tuple(split)
        pages = [pg for s in splits for pg in corpus.pages_in(s) if index.has_page(pg.id)]
        # Words of every indexed page: the retriever's regions may lie on pages of other splits.
        self.words = {
            pg.id: [[w.text, *w.box] for w in pg.words]
            for pg in corpus.pages
            if index.has_page(pg.id)
        }
        # An imported page carries no layout blocks unless its importer wrote them: group its
        # words as the index does for such pages (RegionIndex.load), else it has no gold block.
        self.blocks: dict[str, list[Slot]] = {
            pg.id: [(pg.id, tuple(b.box)) for b in pg.blocks]
            or [(pg.id, tuple(b.box)) for b in blocks_from_words(pg.id, self.words[pg.id])]
            for pg in pages
        }
        self.skipped = {"no_answers": 0, "no_gold_page": 0, "no_gold_block": 0}
        raw = []
        for q in (q for s in splits for q in corpus.questions_in(s)):
            pid = q.page_id
            if not q.answers:
                self.skipped["no_answers"] += 1
                continue
            if pid is None or pid not in self.blocks:
                self.skipped["no_gold_page"] += 1
                continue
            gold = next((s for s in self.blocks[pid] if _same_box(s[1], q.box)), None)
            if (
                gold is None
                and q.box is not None
                and find_answer(self._words((pid, tuple(q.box))), q.answers)
            ):
                gold = (
                    pid,
                    tuple(float(v) for v in q.box),
                )  # the derived unit itself (paragraph, entry, caption)
            if gold is None:  # no (matching) box: the block whose text holds the answer
                gold = next(
                    (
                        s
                        for s in self.blocks[pid]
                        if find_answer(self._words(s), q.answers) is not None
                    ),
                    None,
                )
            if gold is None:
                self.skipped["no_gold_block"] += 1
                continue
            text = (
                rewrite_question(q.question, q.entity) if q.query_image and q.entity else q.question
            )
            raw.append((q, text, gold))
        vectors = (
            encode_queries(retriever, [t for _, t, _ in raw]) if raw else np.zeros((0, index.dim))
        )
        self.samples = [
            ReaderSample(
                q.id,
                text,
                list(q.answers),
                q.page_id,
                gold,
                [h for h in q.hard_negatives if h in self.blocks and h != q.page_id],
                vec,
            )
            for (q, text, gold), vec in zip(raw, vectors)
        ]
        self.all_slots = [s for slots in self.blocks.values() for s in slots]
        self.has_retrieval = engine is not None
        if engine is not None:
            # Retrieval costs ~0.5 s a question on 2 loaded cores: a seeded subset of at most
            # reader.max_retrieved_questions gets the retriever's contexts, the rest injected noise.
            chosen = list(zip(self.samples, raw))
            cap = self.p.max_retrieved_questions
            if cap is not None and len(chosen) > cap:
                chosen = random.Random(f"{params.seed}:{source}:retrieved").sample(chosen, cap)
            for s, (q, _, gold) in chosen:
                hits = engine.search_vector(s.query_vec, question=s.question)
                s.retrieved = engine.regions_for(hits, self.p.contexts, s.question)
                evidence = q.meta.get("answer_box") or q.box or gold[1]
                s.retrieved_gold = [
                    holds_evidence(
                        r.page_id,
                        r.box,
                        self._words((r.page_id, tuple(r.box))) if r.page_id in self.words else [],
                        s,
                        evidence,
                    )
                    for r in s.retrieved
                ]
        if any(self.skipped.values()):
            log.warning(
                "reader %s %s: questions skipped %s", source, "+".join(splits), self.skipped
            )

    def measured_rho(self) -> float | None:
        """Share of the retriever's top-k regions that do not hold the evidence (None: no retrieval)."""
        flags = [g for s in self.samples for g in s.retrieved_gold]
        return 1 - sum(flags) / len(flags) if flags else None

    def _words(self, slot: Slot) -> list[str]:
        from components.reader.contexts import reading_order_words

        return reading_order_words(self.words[slot[0]], slot[1])

    def example(
        self,
        i: int,
        spec: NoiseSpec,
        rng: random.Random,
        mode: str | None = None,
        source: str = "injected",
    ) -> Encoded:
        question, contexts, answer = self.contexts_for(i, spec, rng, mode, source)
        return encode(
            self.p_tokenizer, question, contexts, self.p, self.index.dim, answer, supervise=True
        )

    def slots_for(self, i: int, spec: NoiseSpec, rng: random.Random, source: str = "injected"):
        """The k (page, box, cell mask or None) slots and which one is the gold context."""
        if source not in CONTEXT_SOURCES:
            raise ValueError(
                f"unknown reader context source {source!r} ({' | '.join(CONTEXT_SOURCES)})"
            )
        s = self.samples[i]
        if source != "injected" and not self.has_retrieval:
            raise ValueError(
                f"{source} contexts need the retriever's regions (ReaderExamples(engine=...))"
            )
        if source != "injected" and not s.retrieved:
            source = "injected"  # outside the retrieved subset (max_retrieved_questions)
        if source == "top_k":
            first = next((j for j, g in enumerate(s.retrieved_gold) if g), None)
            return (
                [(r.page_id, tuple(r.box), r.cells) for r in s.retrieved],
                [j == first for j in range(len(s.retrieved))],
            )
        same_page = [(*b, None) for b in self.blocks[s.page_id] if b != s.gold]
        others = [(*b, None) for b in self.all_slots if b[0] != s.page_id]
        if source == "retrieved":
            # The retriever's own mistakes are the distractors (all of them, whichever rank).
            hard = [
                (r.page_id, tuple(r.box), r.cells)
                for r, g in zip(s.retrieved, s.retrieved_gold)
                if not g
            ]
            spec = NoiseSpec(spec.k, spec.rho, 1.0, spec.no_answer_fraction)
        else:
            hard = [(*b, None) for pid in s.hard_pages for b in self.blocks[pid]]
        slots, gold_flags, _ = sample_contexts((*s.gold, None), same_page, hard, others, spec, rng)
        return slots, gold_flags

    def contexts_for(
        self,
        i: int,
        spec: NoiseSpec,
        rng: random.Random,
        mode: str | None = None,
        source: str = "injected",
    ):
        """(question, k contexts, answer as (context, first word, last word) or None) for sample ``i``."""
        s = self.samples[i]
        slots, gold_flags = self.slots_for(i, spec, rng, source)
        np_rng = np.random.default_rng(rng.getrandbits(32))
        contexts, answer = [], None
        for c, ((pid, box, cells), is_gold) in enumerate(zip(slots, gold_flags)):
            ctx = make_context(
                pid,
                box,
                self.words[pid],
                self.index.cell_vectors(pid),
                self.grid,
                self.p.top_m,
                mode or self.p.visual_tokens,
                s.query_vec,
                rng=np_rng,
                cell_mask=cells,
                is_gold=is_gold,
            )
            if is_gold and answer is None:
                span = find_answer(ctx.words, s.answers)
                if span is not None:
                    answer = (c, *span)
            contexts.append(ctx)
        return s.question, contexts, answer

    p_tokenizer = None  # set by the data module (the reader's tokenizer)


class _NoisyDataset(Dataset):
    """The samples of several example sets (synthetic, real pages) as one dataset."""

    def __init__(
        self, sets: list[ReaderExamples], spec: NoiseSpec, seed: int, fixed: bool, source: str
    ):
        self.sets, self.spec, self.seed, self.fixed, self.source = sets, spec, seed, fixed, source
        self.index = [(j, i) for j, ex in enumerate(sets) for i in range(len(ex.samples))]
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, n: int) -> Encoded:
        # Validation draws the same contexts every time; training draws fresh noise each epoch.
        rng = (
            random.Random(f"{self.seed}:{n}")
            if self.fixed
            else random.Random(self.rng.getrandbits(64))
        )
        j, i = self.index[n]
        return self.sets[j].example(i, self.spec, rng, source=self.source)


class ReaderDataModule(L.LightningDataModule):
    """Synthetic train/val questions, plus the real pages' questions when ``real`` = (corpus, index).

    Real pages: documents of the ``val`` split validate, the others train (split by document).
    """

    def __init__(self, params: Params, corpus: Corpus, index, retriever, tokenizer, real=None):
        super().__init__()
        from components.retrieval import RegionRetrieval

        p = params.reader
        self.params, self.source = params, p.train_contexts
        self.spec = NoiseSpec(
            p.contexts, p.noise_rho, p.hard_distractor_share, p.no_answer_fraction
        )
        retrieve = p.train_contexts != "injected"

        def engine_for(idx):
            return RegionRetrieval(retriever, idx, params) if retrieve else None

        self.train_sets = [
            ReaderExamples(params, corpus, index, retriever, "train", engine_for(index))
        ]
        self.val_sets = [ReaderExamples(params, corpus, index, retriever, "val", engine_for(index))]
        if real is not None:
            real_corpus, real_index = real
            engine = engine_for(real_index)
            self.train_sets.append(
                ReaderExamples(
                    params,
                    real_corpus,
                    real_index,
                    retriever,
                    ("train", "test"),
                    engine,
                    source="real",
                )
            )
            self.val_sets.append(
                ReaderExamples(
                    params, real_corpus, real_index, retriever, "val", engine, source="real"
                )
            )
        self.train_sets = [ex for ex in self.train_sets if ex.samples]
        self.val_sets = [ex for ex in self.val_sets if ex.samples]
        for ex in (*self.train_sets, *self.val_sets):
            ex.p_tokenizer = tokenizer
        if not self.train_sets:
            raise ValueError(f"no train questions with answers and a gold block in {corpus.root}")
        self.pad_id, self.cell_dim = tokenizer.pad_token_id, index.dim

    @property
    def val_samples(self) -> list[ReaderSample]:
        return [s for ex in self.val_sets for s in ex.samples]

    def counts(self) -> dict:
        out: dict = {}
        for name, sets in (("train", self.train_sets), ("val", self.val_sets)):
            for ex in sets:
                out[f"{name}_questions_{ex.source}"] = len(ex.samples)
                out.update({f"{name}_skipped_{ex.source}_{k}": v for k, v in ex.skipped.items()})
                rho = ex.measured_rho()
                if rho is not None:  # share of the retriever's top-k that miss the evidence
                    out[f"{name}_retrieved_rho_{ex.source}"] = round(rho, 4)
        out["train_questions"] = sum(len(ex.samples) for ex in self.train_sets)
        out["val_questions"] = sum(len(ex.samples) for ex in self.val_sets)
        return out

    def _collate(self, batch: list[Encoded]):
        return {**collate(batch, self.pad_id, self.cell_dim), "encoded": batch}

    def train_dataloader(self) -> DataLoader:
        ds = _NoisyDataset(self.train_sets, self.spec, self.params.seed, False, self.source)
        return DataLoader(
            ds, batch_size=self.params.reader.batch_size, shuffle=True, collate_fn=self._collate
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_sets:
            return []
        ds = _NoisyDataset(self.val_sets, self.spec, self.params.seed, True, self.source)
        return DataLoader(
            ds, batch_size=self.params.reader.batch_size, shuffle=False, collate_fn=self._collate
        )
