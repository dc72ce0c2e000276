"""Question -> regions latency on real pages (issue 25), side by side with as many synthetic pages."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from components.bench.corpus import encode_all, spread
from components.bench.served import (
    answer_timed,
    latency_percentiles,
    regions_timed,
    served_engine,
)
from components.bench.targets import (
    COMPRESSED_DEFAULT,
    DEFAULT_LATENCY_QUESTIONS,
    LATENCY_THREADS,
    REFERENCE_MODE,
)
from components.config import Params
from components.data.corpus import load_corpus
from components.index.parallel_encode import effective_workers
from components.index.region_index import PageMeta


def replicated(
    metas: list[PageMeta], cells: np.ndarray, n_pages: int
) -> tuple[list[PageMeta], np.ndarray]:
    """The pages repeated under new ids (copy k of page p is ``p~k``, in document ``doc~k``) to
    ``n_pages`` (all of them at least once): a real-page index of the size latency is measured at."""
    copies = max(1, -(-n_pages // max(len(metas), 1)))
    n = max(n_pages, len(metas))
    out = [
        m if k == 0 else dataclasses.replace(m, page_id=f"{m.page_id}~{k}", doc=f"{m.doc}~{k}")
        for k in range(copies)
        for m in metas
    ][:n]
    return out, np.concatenate([cells] * copies)[:n]


def _encode_and_regions_ms(engine, question: str) -> tuple[float, float]:
    """``answer_timed``'s path (question text -> ranked regions) in milliseconds, and the part of
    it spent encoding the question."""
    t0 = time.perf_counter()
    vector = engine.encode(question)
    encode_ms = (time.perf_counter() - t0) * 1e3
    regions_timed(engine, question, vector)
    return (time.perf_counter() - t0) * 1e3, encode_ms


def real_corpus_dir(
    real_docs: Path, real_questions: Path | None, params: Params, scratch: Path
) -> tuple[Path, dict | None]:
    """A corpus folder of the real pages: ``real_docs`` itself when it is one (it has pages.jsonl),
    else its PDFs/images and ``real_questions`` imported into ``scratch`` through ``regionops
    import``'s path (bad documents and questions quarantined with a reason, counted here)."""
    from components.data.importer import import_documents

    if (Path(real_docs) / "pages.jsonl").exists():
        return Path(real_docs), None
    if real_questions is None:
        raise ValueError(
            f"{real_docs} is a folder of documents, not a corpus: its questions JSONL is needed too"
        )
    report = import_documents(
        Path(real_docs), Path(real_questions), scratch, params, collection="bench-real"
    )
    return scratch, {
        "pages": report["pages"],
        "questions": report["questions"]["accepted"],
        "quarantined_documents": report["documents"]["quarantined"],
        "quarantined_questions": report["questions"]["quarantined"],
    }


def real_latency(
    params: Params,
    model,
    export: Path,
    real_corpus: Path,
    n_pages: int,
    synthetic: tuple[list, np.ndarray, list],
    threads: int = LATENCY_THREADS,
    latency_questions: int = DEFAULT_LATENCY_QUESTIONS,
) -> dict:
    """Question -> regions on the real corpus's pages replicated to ``n_pages`` and on as many
    synthetic pages, float16 and COMPRESSED_DEFAULT, one question of each side in turn (the side
    going first alternates) so load changes hit both alike."""
    from components.model.encode import torch_threads

    corpus = load_corpus(real_corpus)
    real_questions = [
        q
        for q in corpus.questions
        if q.question and not q.query_image and corpus.has_page(q.page_id)
    ]
    if not corpus.pages or not real_questions:
        raise ValueError(
            f"{real_corpus}: real-page latency needs pages and text questions on them "
            f"(found {len(corpus.pages)} pages, {len(real_questions)} questions)"
        )
    workers = effective_workers(len(corpus.pages), params.index.encode_workers)
    t0 = time.perf_counter()
    real_cells = encode_all(
        model, corpus, corpus.pages, export, workers, params.index.encode_threads
    )
    encode_s = time.perf_counter() - t0
    real_metas, real_cells = replicated(
        [PageMeta.from_page(p) for p in corpus.pages], real_cells, n_pages
    )
    syn_pages, syn_cells, syn_questions = synthetic
    n = min(latency_questions, max(1, len(real_questions)), len(syn_questions))
    sides = {"real": spread(real_questions, n), "synthetic": spread(syn_questions, n)}
    n = min(len(v) for v in sides.values())
    out = {
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
        "regions": params.regions.model_dump(exclude={"search", "tune"}),
        "real_pages": len(corpus.pages),
        "real_questions": len(real_questions),
        "pages": len(real_metas),
        "synthetic_pages": len(syn_pages),
        "questions": n,
        "threads": threads,
        "real_encode_pages_per_s": round(len(corpus.pages) / encode_s, 2),
        "modes": {},
    }
    for mode in (REFERENCE_MODE, COMPRESSED_DEFAULT):
        engines = {
            "real": served_engine(params, model, real_metas, real_cells, mode)[0],
            "synthetic": served_engine(params, model, syn_pages, syn_cells, mode)[0],
        }
        ms: dict[str, list[float]] = {side: [] for side in engines}
        enc: dict[str, list[float]] = {side: [] for side in engines}
        with torch_threads(threads):
            for side, engine in engines.items():
                answer_timed(engine, sides[side][0].question)  # warm-up
            for i in range(n):
                for side in ("real", "synthetic") if i % 2 == 0 else ("synthetic", "real"):
                    total, encode = _encode_and_regions_ms(engines[side], sides[side][i].question)
                    ms[side].append(total)
                    enc[side].append(encode)
        out["modes"][mode] = {
            side: {
                **latency_percentiles(v),
                # the question's encoding alone, and the rest (fused search, regions) alone
                "encode_p50_ms": latency_percentiles(enc[side])["p50_ms"],
                "search_regions_p50_ms": latency_percentiles([t - e for t, e in zip(v, enc[side])])[
                    "p50_ms"
                ],
            }
            for side, v in ms.items()
        }
        # Both sides ran in turn under the same load: their ratio is the figure a loaded machine
        # still compares (absolute figures move with the load, noted in bench.json's machine).
        real_p50, syn_p50 = (out["modes"][mode][side]["p50_ms"] for side in ("real", "synthetic"))
        out["modes"][mode]["real_over_synthetic_p50"] = (
            round(real_p50 / syn_p50, 3) if syn_p50 > 0 else None
        )
        del engines
    out["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return out
