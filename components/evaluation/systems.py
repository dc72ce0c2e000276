"""The six evaluated systems, run on one question over the same indexed pages.

  regionops        the retriever + index at region level (top region across candidate pages),
                   dense and lexical channels fused (``rag.lexical_weight``);
  regionops_dense  the same with the lexical channel off, regions from the dense heatmap (never
                   the text-block rule) under its own tuned settings (``regions.dense``): each
                   channel's contribution;
  lexical_only     the lexical channel alone, no learned model (``lexical_only.py``): the bar
                   every learned component must clear;
  page_level       the same model and page ranking as regionops, region = the whole top page;
  bm25_blocks      BM25+ (the lexical channel's) over text-layer blocks, region = best block;
  dense_blocks     MiniLM dense retrieval over the same blocks.

Every system reads the same question text: for a question with a query image, the text the
served engine retrieves with (``RagEngine.query``: the two-stage rewrite naming the pictured
entity, or the question itself), so the text-only systems are not handed an image they cannot
read. Every system's answer comes from the same answerer over its top region
(``region_answer.RegionAnswerer``). Latency per system: its own work for the question,
answering included; the model systems include query encoding (and the two-stage rewrite).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from components.config import Params
from components.data.corpus import Corpus
from components.evaluation.baselines import BM25Blocks, DenseBlocks, blocks_from_words, page_blocks
from components.evaluation.lexical_only import LexicalOnly
from components.evaluation.region_answer import RegionAnswerer
from components.rag.engine import RagEngine
from components.regions.extract import extract_regions

SYSTEMS = (
    "regionops",
    "regionops_dense",
    "lexical_only",
    "page_level",
    "bm25_blocks",
    "dense_blocks",
)
FULL_PAGE = (0.0, 0.0, 1.0, 1.0)


@dataclass
class SystemOutput:
    """What one system returned for one question."""

    ranking: list[str]
    top_page: str | None
    top_box: tuple | None
    gold_page_box: tuple | None  # the system's best region on the gold page (for mean IoU)
    answer: str
    latency_ms: float
    extra: dict[str, Any] = field(default_factory=dict)


def _dedup(pages: list[str]) -> list[str]:
    return list(dict.fromkeys(pages))


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def dense_only(params: Params) -> Params:
    """``regionops_dense``'s settings: no lexical term map, and regions from the dense heatmap.

    Under ``regions.rule: text_blocks`` the blocks' BM25+ would pick the regions (lexical
    evidence), so the dense system takes the heatmap rule; its regions are then ranked by their
    best cell (``score: max``), as its pages are: a mean score would reorder its pages by region
    means. Its heatmap settings are ``regions.dense`` where the tuner chose them on its own maps,
    else the fused system's (under text_blocks, the fallback's, tuned for maps with terms in).
    """
    # no term evidence in its region maps either (a tuned regions.lexical_weight, ADR 31)
    regions = params.regions.model_copy(update={"lexical_weight": 0.0})
    if regions.dense is not None:
        regions = regions.model_copy(
            update=regions.dense.model_dump() | {"rule": "heatmap", "score": "max"}
        )
    elif regions.rule != "heatmap":
        regions = regions.model_copy(update={"rule": "heatmap", "score": "max"})
    return params.model_copy(
        update={"rag": params.rag.model_copy(update={"lexical_weight": 0.0}), "regions": regions}
    )


class SystemRunner:
    """Runs the six systems on a question; built once per evaluation (blocks, BM25, MiniLM)."""

    def __init__(self, params: Params, corpus: Corpus, engine: RagEngine, answerer: RegionAnswerer):
        self.params, self.corpus, self.answerer = params, corpus, answerer
        # Retrieval only: answers come from the shared answerer, never from the engine's own reader.
        self.engine = RagEngine(engine.retriever, engine.index, params)
        self.dense_engine = RagEngine(engine.retriever, engine.index, dense_only(params))
        index = engine.index
        blocks = []
        for pid in index.page_ids:
            if corpus.has_page(pid):
                blocks.extend(page_blocks(corpus.page(pid)))
            else:  # the index may hold pages the evaluation corpus lacks: use its stored text layer
                blocks.extend(blocks_from_words(pid, index.meta(pid).words))
        # A corpus of visual-only pages has no block: the block baselines then find nothing.
        self.bm25 = BM25Blocks(blocks) if blocks else None
        self.dense = DenseBlocks.from_params(blocks, params.model) if blocks else None
        self.lexical = LexicalOnly.from_index(index, params)
        self.n_blocks = len(blocks)

    def query_image(self, question):
        path = self.corpus.query_image_path(question)
        if path is None:
            return None
        from PIL import Image

        with Image.open(path) as img:
            return img.convert("RGB")

    def run(self, question) -> dict[str, SystemOutput]:
        engine, index, k = self.engine, self.engine.index, self.params.evaluate.k
        rag = self.params.rag
        gold = question.page_id
        gold_indexed = gold is not None and index.has_page(gold)
        t0 = time.perf_counter()
        text, qv = engine.query(question.question, self.query_image(question))  # as served
        query_ms = _ms(t0)

        def answer(page_id, box, more=()) -> tuple[str, float]:
            t = time.perf_counter()
            return self.answerer.answer(text, page_id, box, qv, more), _ms(t)

        outputs: dict[str, SystemOutput] = {}
        t0 = time.perf_counter()
        hits = engine.search_vector(qv, question=text)
        search_ms = _ms(t0)
        result = engine.answer_vector(text, qv, k=k, hits=hits)
        region_ms = _ms(t0)
        top_box = tuple(result.boxes[0]) if result.boxes else None
        gold_box = None
        if gold_indexed:
            fused = index.heatmap(
                gold,
                engine.index_query(qv, text),
                text,
                rag.lexical_weight,
                rag.lexical_scope,
                rag.region_term_weights,
                self.params.region_lexical_weight(),
            )
            regions = extract_regions(
                fused,
                self.params.regions,
                gold,
                blocks=index.meta(gold).blocks,
                text_scores=index.lexical.block_scores(text, index.position(gold))
                if self.params.regions.rule == "text_blocks"
                else None,
            )
            gold_box = regions[0].box if regions else None
        said, answer_ms = answer(result.page_id, top_box, _ranked(result.regions[1:]))
        outputs["regionops"] = SystemOutput(
            ranking=_dedup(
                [r["page_id"] for r in result.regions] + [p for p, _ in result.page_ranking]
            ),
            top_page=result.page_id,
            top_box=top_box,
            gold_page_box=gold_box,
            answer=said,
            latency_ms=query_ms + region_ms + answer_ms,
            extra={"result": result, "query": qv, "hits": hits},
        )

        t0 = time.perf_counter()
        dense = self.dense_engine.answer_vector(text, qv, k=k)
        dense_ms = _ms(t0)
        dense_top = tuple(dense.boxes[0]) if dense.boxes else None
        dense_gold = None
        if gold_indexed:
            regions = extract_regions(  # by the dense system's own rule, as it serves
                index.heatmap(gold, self.dense_engine.index_query(qv, text)),
                self.dense_engine.params.regions,
                gold,
                blocks=index.meta(gold).blocks,
            )
            dense_gold = regions[0].box if regions else None
        said, answer_ms = answer(dense.page_id, dense_top, _ranked(dense.regions[1:]))
        outputs["regionops_dense"] = SystemOutput(
            ranking=_dedup(
                [r["page_id"] for r in dense.regions] + [p for p, _ in dense.page_ranking]
            ),
            top_page=dense.page_id,
            top_box=dense_top,
            gold_page_box=dense_gold,
            answer=said,
            latency_ms=query_ms + dense_ms + answer_ms,
        )

        t0 = time.perf_counter()
        lexical = self.lexical.search(text)
        said, _ = answer(lexical.top_page, lexical.top_box)
        lexical_ms = _ms(t0)
        outputs["lexical_only"] = SystemOutput(
            ranking=lexical.ranking,
            top_page=lexical.top_page,
            top_box=lexical.top_box,
            gold_page_box=self.lexical.region_box(text, gold) if gold_indexed else None,
            answer=said,
            latency_ms=lexical_ms,
        )

        top = hits[0].page_id if hits else None
        said, answer_ms = answer(
            top, FULL_PAGE if top else None, [(h.page_id, FULL_PAGE) for h in hits[1:]]
        )
        outputs["page_level"] = SystemOutput(
            ranking=[h.page_id for h in hits],
            top_page=top,
            top_box=FULL_PAGE if top else None,
            gold_page_box=FULL_PAGE if gold_indexed else None,
            answer=said,
            latency_ms=query_ms + search_ms + answer_ms,
        )
        outputs["bm25_blocks"] = self._run_blocks(self.bm25, question, text, answer)
        outputs["dense_blocks"] = self._run_blocks(self.dense, question, text, answer)
        return outputs

    @staticmethod
    def _run_blocks(system, question, text: str, answer) -> SystemOutput:
        t0 = time.perf_counter()
        hits = system.search(text) if system is not None else []
        top = hits[0] if hits else None
        said, _ = answer(
            top.page_id if top else None,
            top.block.box if top else None,
            [(h.page_id, h.block.box) for h in hits[1:]],
        )
        latency = _ms(t0)
        gold_hit = next((h for h in hits if h.page_id == question.page_id), None)
        return SystemOutput(
            ranking=[h.page_id for h in hits],
            top_page=top.page_id if top else None,
            top_box=top.block.box if top else None,
            gold_page_box=gold_hit.block.box if gold_hit else None,
            answer=said,
            latency_ms=latency,
        )


def _ranked(regions: list[dict]) -> list[tuple[str, list[float]]]:
    """(page, box) of an engine result's regions, in rank order."""
    return [(r["page_id"], r["box"]) for r in regions]
