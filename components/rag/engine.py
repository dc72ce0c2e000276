"""Question -> ranked regions -> answer: the online path of regionops (docs/design.md §5, §6).

encode query → index.search (faiss candidates, exact heatmaps) → extract_regions per candidate
page → rank regions across pages → top-k regions → answer from the top region's text layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components.config import Params
from components.index.region_index import PageHit, RegionIndex
from components.rag import tracing
from components.rag.answer import answer_from_region, region_text
from components.retrieval import RegionRetrieval


@dataclass
class RagResult:
    question: str
    answer: str
    page_id: str | None
    boxes: list[list[float]]
    scores: list[float]
    regions: list[dict[str, Any]]
    # Heatmaps of the candidate pages read for the top regions (every page that could place one;
    # ADR 29), kept for highlights; not serialised.
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    page_ranking: list[tuple[str, float]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "page_id": self.page_id,
            "boxes": self.boxes,
            "scores": self.scores,
            "regions": self.regions,
        }


def checked_k(k, default: int) -> int:
    """``k`` regions to return: None means ``default``; anything but a positive integer is refused
    (2.9 must not quietly become 2, nor 0 the default, nor True 1)."""
    if k is None:
        return default
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


class RagEngine(RegionRetrieval):
    """Question (and query image) -> encoded query -> ranked regions (``RegionRetrieval``) -> answer."""

    def __init__(
        self, retriever, index: RegionIndex, params: Params, tracing_on: bool | None = None
    ):
        super().__init__(retriever, index, params)
        self.reader = None  # a ReaderAnswerer (components.reader): answers from the top-k regions
        # MLflow traces of answer(): off unless asked for (components/rag/tracing.py says why)
        self.tracing_on = tracing.tracing_requested() if tracing_on is None else tracing_on

    def with_reader(self, reader_dir: Path) -> RagEngine:
        """Answer with the trained span reader instead of the top region's text heuristic."""
        from components.reader.answerer import ReaderAnswerer
        from components.reader.io import load_reader

        self.reader = ReaderAnswerer(load_reader(reader_dir), self.index)
        return self

    @classmethod
    def from_dirs(cls, model_dir: Path, index_dir: Path, params: Params) -> RagEngine:
        from components.model.io import load_retriever, retriever_dir
        from components.reader.io import bundled_reader_dir

        retriever = load_retriever(retriever_dir(model_dir))
        index = RegionIndex.load(Path(index_dir), expected_fingerprint=retriever.fingerprint)
        engine = cls(retriever, index, params)
        # A registered bundle carries its reader beside the retriever: serve answers from it.
        reader = bundled_reader_dir(model_dir)
        return engine.with_reader(reader) if reader is not None else engine

    # ------------------------------------------------------------------ query encoding
    def encode(self, question: str, query_image=None) -> np.ndarray:
        """The query vector. With an image, text and image vectors are normalised and summed
        (the ``fused`` way; ``query`` runs the two-stage way first)."""
        from components.model.encode import encode_image_queries

        parts = []
        if question and question.strip():
            parts.append(self.text_query_vector(question))
        if query_image is not None:
            parts.append(encode_image_queries(self.retriever, [query_image])[0])
        if not parts:
            raise ValueError("a query needs a question text or a query image")
        if len(parts) == 1:
            return parts[0].astype(np.float32)
        return np.sum([p / max(np.linalg.norm(p), 1e-12) for p in parts], axis=0).astype(np.float32)

    def retrieve_pages(self, question: str, filters: dict | None = None) -> list[tuple[str, float]]:
        """Candidate pages ranked by page score (max cell), for page-level metrics."""
        hits = self.search_vector(self.encode(question), filters=filters, question=question)
        return [(h.page_id, h.score) for h in hits]

    def answer_vector(
        self,
        question: str,
        query: np.ndarray,
        k: int | None = None,
        filters: dict | None = None,
        hits: list[PageHit] | None = None,
    ) -> RagResult:
        """Regions and answer for an encoded query (``hits``: reuse an earlier search's pages)."""
        k = checked_k(k, self.params.rag.k)
        with tracing.span(
            self.tracing_on, "retrieve regions", "RETRIEVER", {"question": question, "k": k}
        ) as span:
            if hits is None:
                hits = self.search_vector(query, filters=filters, question=question)
            # the maps of the pages read for the top k: the result's heatmaps are these
            regions, maps = self.regions_and_maps(hits, k, question)
            region_dicts = []
            for r in regions:
                words = self.index.meta(r.page_id).words
                region_dicts.append(
                    {
                        "page_id": r.page_id,
                        "box": [round(float(v), 6) for v in r.box],
                        "score": float(r.score),
                        "n_cells": r.n_cells,
                        "text": region_text(words, r.box),
                    }
                )
            span.set_attributes({"candidate_pages": [h.page_id for h in hits]})
            span.set_outputs(tracing.region_documents(region_dicts))
        answer, top_page = "", None
        if regions:
            top_page = regions[0].page_id
            kind = "reader" if self.reader is not None else "text layer"
            with tracing.span(
                self.tracing_on,
                f"answer ({kind})",
                "PARSER",
                {"question": question, "top_region": region_dicts[0]},
            ) as span:
                if self.reader is not None:
                    answer = self.reader.answer(
                        question, self.reader.region_contexts(regions, query)
                    ).answer
                else:
                    answer = answer_from_region(
                        question, self.index.meta(top_page).words, regions[0].box
                    )
                span.set_outputs({"answer": answer, "page_id": top_page})
        return RagResult(
            question=question,
            answer=answer,
            page_id=top_page,
            boxes=[d["box"] for d in region_dicts],
            scores=[d["score"] for d in region_dicts],
            regions=region_dicts,
            heatmaps=maps,  # the maps the regions came from
            page_ranking=[(h.page_id, h.score) for h in hits],
        )

    def query(self, question: str, query_image=None) -> tuple[str, np.ndarray]:
        """The question text and vector that retrieval runs with.

        With a query image and ``rag.image_query: two_stage``, stage 1 names the pictured entity
        and the question rewritten with that name is encoded alone (``components.rag.two_stage``);
        when stage 1 names nothing, or with ``fused``, text and image vectors are summed.
        """
        if (
            query_image is not None
            and question
            and question.strip()
            and self.params.rag.image_query == "two_stage"
        ):
            from components.rag.two_stage import stage_one

            trace = stage_one(self, query_image, question)
            if trace.entity:
                return trace.rewritten, self.encode(trace.rewritten)
        return question, self.encode(question, query_image)

    def answer(
        self, question: str, k: int | None = None, query_image=None, filters: dict | None = None
    ) -> RagResult:
        k = checked_k(k, self.params.rag.k)  # before any encoding work
        inputs = {"question": question, "k": k, "query_image": query_image is not None}
        with tracing.span(self.tracing_on, "rag answer", "CHAIN", inputs) as span:
            with tracing.span(
                self.tracing_on, "encode query", "EMBEDDING", {"question": question}
            ) as enc:
                text, vector = self.query(question, query_image)
                enc.set_outputs({"question_used": text, "dim": int(vector.shape[-1])})
            result = self.answer_vector(text, vector, k, filters)
            span.set_outputs(result.to_dict())
        return result
