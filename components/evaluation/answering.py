"""Answer-level evaluation with the trained reader (issue 7): ANLS, EM and visual-token accounting.

Systems, all read by the same reader at the same k:
  oracle        clean contexts: the gold block plus other blocks of the gold page (no retrieval);
  regionops     the top-k retrieved regions, each with its top-m refined cells
                (image questions: the engine's single-stage fused image+text query);
  page_level    the top-k retrieved pages, each a context under the same budget rule as a
                region (its best lines up to max_context_tokens pieces, top_m pooled cells);
  two_stage     image questions only: image -> entity name -> rewritten question -> regions;
  single_stage  image questions only: ``regionops`` restricted to them, for the comparison.
Two-stage retrieval also reports stage-1 precision (the name read is the gold entity) and
stage-2 precision (the top region holds the evidence), beside single-stage's.

Retrieval runs once per question (``AnsweringBench``); readers and visual-token modes reuse it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from components.evaluation import metrics as M
from components.reader.answerer import ReaderAnswerer
from components.reader.contexts import Context
from components.reader.model import norm_word
from components.reader.noise import NoiseSpec
from components.reader.refine import image_query_keep

SYSTEMS = ("oracle", "regionops", "page_level", "two_stage", "single_stage")


def _norm(text: str) -> str:
    return " ".join(w for w in (norm_word(t) for t in str(text).split()) if w)


def evidence_hit(region, question) -> float:
    """1 when ``region`` is on the gold page and contains the centre of the evidence box."""
    if region is None or question.page_id is None or region.page_id != question.page_id:
        return 0.0
    box = question.meta.get("answer_box") or question.box
    if box is None:
        return 0.0
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0, x1, y1 = region.box
    return float(x0 <= cx <= x1 and y0 <= cy <= y1)


@dataclass
class _Item:
    question: object
    text: str
    qvec: np.ndarray
    regions: list
    pages: list[str]
    image_keep: np.ndarray | None = None
    two_stage: dict = field(default_factory=dict)


class AnsweringBench:
    """Retrieval done once per question of ``split`` that has answers; contexts built per mode."""

    def __init__(
        self,
        params,
        corpus,
        engine,
        split: str | tuple[str, ...],
        k: int | None = None,
        question_ids: set[str] | None = None,
        retrieved: dict[str, tuple] | None = None,
    ):
        """``retrieved``: question id -> (query vector, page hits) of an earlier search by the same
        engine and params (``score_questions``'s), reused for text questions instead of searching
        again: the evaluation's second retrieval pass cost as much as its first."""
        from components.rag.two_stage import image_query_cells, stage_one

        self.params, self.corpus, self.engine = params, corpus, engine
        self.k = k or params.reader.contexts
        m = params.reader.top_m
        splits = (split,) if isinstance(split, str) else tuple(split)
        questions = [
            q
            for s in splits
            for q in corpus.questions_in(s)
            if q.answers and (question_ids is None or q.id in question_ids)
        ]
        self.items: list[_Item] = []
        for q in questions:
            image = self._image(q)
            if image is None and retrieved and q.id in retrieved:
                qvec, hits = retrieved[q.id]
            else:
                qvec = engine.encode(q.question, image)
                hits = engine.search_vector(qvec, question=q.question)
            item = _Item(
                q,
                q.question,
                qvec,
                engine.regions_for(hits, self.k, q.question),
                [h.page_id for h in hits[: self.k]],
            )
            if image is not None:
                trace = stage_one(engine, image, q.question)
                vec2 = engine.encode(trace.rewritten)
                hits2 = engine.search_vector(vec2, question=trace.rewritten)
                keep = image_query_keep(image_query_cells(engine.retriever, image), vec2, m)
                item.image_keep = keep
                item.two_stage = {
                    "trace": trace,
                    "qvec": vec2,
                    "regions": engine.regions_for(hits2, self.k, trace.rewritten),
                }
            self.items.append(item)
        self.oracle = self._oracle(params, corpus, engine, split)
        if self.oracle is not None and question_ids is not None:
            self.oracle.samples = [x for x in self.oracle.samples if x.question_id in question_ids]
        self._cache: dict[tuple[str, str], list[tuple[int, str, list[Context], int]]] = {}

    def _image(self, q):
        path = self.corpus.query_image_path(q)
        if path is None:
            return None
        from PIL import Image

        with Image.open(path) as img:
            return img.convert("RGB")

    def _oracle(self, params, corpus, engine, split):
        from components.reader.data import ReaderExamples

        ex = ReaderExamples(params, corpus, engine.index, engine.retriever, split)
        return ex if ex.samples else None

    # ------------------------------------------------------------------ contexts per system
    def contexts(
        self, answerer: ReaderAnswerer, system: str, mode: str
    ) -> list[tuple[int, str, list[Context]]]:
        """(item index, question text, contexts) for one system and mode."""
        key = (system, mode)
        if key in self._cache:
            return self._cache[key]
        rows = []
        if system == "oracle" and self.oracle is not None:
            spec = NoiseSpec(self.k, 0.0, 0.0, 0.0)
            by_id = {it.question.id: i for i, it in enumerate(self.items)}
            for j, s in enumerate(self.oracle.samples):
                text, ctxs, _ = self.oracle.contexts_for(
                    j, spec, random.Random(f"{self.params.seed}:oracle:{j}"), mode
                )
                if s.question_id in by_id:
                    rows.append((by_id[s.question_id], text, ctxs))
        for i, it in enumerate(self.items):
            image_q = it.image_keep is not None
            if system == "regionops" or (system == "single_stage" and image_q):
                ctxs = answerer.region_contexts(it.regions, it.qvec, mode, it.image_keep, seed=i)
                rows.append((i, it.text, ctxs))
            elif system == "page_level":
                rows.append((i, it.text, answerer.page_contexts(it.pages)))
            elif system == "two_stage" and image_q:
                ts = it.two_stage
                ctxs = answerer.region_contexts(
                    ts["regions"], ts["qvec"], mode, it.image_keep, seed=i
                )
                rows.append((i, ts["trace"].rewritten, ctxs))
        self._cache[key] = rows
        return rows

    def answers(
        self, answerer: ReaderAnswerer, system: str, mode: str = "refine"
    ) -> list[tuple[int, object]]:
        """(item index, ReaderAnswer) per question the system answers, in item order."""
        rows = self.contexts(answerer, system, mode)
        return list(
            zip([i for i, _, _ in rows], answerer.read([(text, ctxs) for _, text, ctxs in rows]))
        )

    def score(self, answerer: ReaderAnswerer, system: str, mode: str = "refine") -> dict:
        rows = self.contexts(answerer, system, mode)
        if not rows:
            return {
                "n": 0,
                "anls": None,
                "em": None,
                "visual_tokens": None,
                "text_tokens": None,
                "tokens": None,
            }
        answers = [a for _, a in self.answers(answerer, system, mode)]
        acc = M.MetricAccumulator()
        for (i, _, _), a in zip(rows, answers):
            gold = self.items[i].question.answers
            acc.add("anls", M.anls(a.answer, gold))
            acc.add("em", M.exact_match(a.answer, gold))
        means = acc.means()
        # The tokens the reader actually received (as encoded), not notional cells.
        visual = float(np.mean([a.visual_tokens for a in answers]))
        text = float(np.mean([a.text_tokens for a in answers]))
        return {
            "n": len(rows),
            "anls": means.get("anls"),
            "em": means.get("em"),
            "visual_tokens": visual,
            "text_tokens": text,
            "tokens": visual + text,
        }

    def retrieval_precision(self) -> dict:
        """Stage-1 (right entity) and stage-2 (evidence in the top region) precision on image questions."""
        image_items = [it for it in self.items if it.image_keep is not None]
        if not image_items:
            return {"n_image_questions": 0}
        stage1 = [
            float(_norm(it.two_stage["trace"].entity) == _norm(it.question.entity or ""))
            for it in image_items
            if it.question.entity
        ]
        stage2 = [
            evidence_hit(
                it.two_stage["regions"][0] if it.two_stage["regions"] else None, it.question
            )
            for it in image_items
        ]
        single = [
            evidence_hit(it.regions[0] if it.regions else None, it.question) for it in image_items
        ]
        at_k = [
            max((evidence_hit(r, it.question) for r in it.two_stage["regions"]), default=0.0)
            for it in image_items
        ]
        single_k = [
            max((evidence_hit(r, it.question) for r in it.regions), default=0.0)
            for it in image_items
        ]
        return {
            "n_image_questions": len(image_items),
            "stage1_precision": float(np.mean(stage1)) if stage1 else None,
            "stage2_precision": float(np.mean(stage2)),
            "single_stage_precision": float(np.mean(single)),
            "stage2_evidence_at_k": float(np.mean(at_k)),
            "single_stage_evidence_at_k": float(np.mean(single_k)),
        }


def evaluate_answering(
    bench: AnsweringBench, answerer: ReaderAnswerer, mode: str | None = None
) -> dict:
    """Per-system ANLS/EM/tokens passed (+ ratios against page_level) and two-stage precision.

    ``token_ratio``: text + visual tokens handed over / page_level's; ``visual_token_ratio``: the
    visual tokens alone. Both count what was encoded for the reader under one budget rule.
    """
    mode = mode or answerer.p.visual_tokens
    systems = {name: bench.score(answerer, name, mode) for name in SYSTEMS}
    page = systems["page_level"]
    for values in systems.values():
        for key, ratio in (("tokens", "token_ratio"), ("visual_tokens", "visual_token_ratio")):
            mine, base = values.get(key), page.get(key)
            values[ratio] = mine / base if mine is not None and base else None
    return {
        "k": bench.k,
        "top_m": answerer.p.top_m,
        "visual_tokens_mode": mode,
        "systems": systems,
        "two_stage": bench.retrieval_precision(),
    }
