"""Stage-1 methods of two-stage retrieval compared on image questions (ADR 8).

For every question with a query image in the chosen splits, the same retriever, index and reader
answer it three ways: single-stage (the fused image+text query), two-stage with stage 1 by the
stored picture descriptors, and two-stage with stage 1 by the retriever's pixel path. Region
settings are chosen on val exactly as ``regionops evaluate`` does. Per split and pooled:
ANLS, EM, stage-1 precision (the name read is the gold entity), stage-2 precision (the top
region holds the evidence) and evidence within the top k.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.config import Params
from components.data.corpus import Corpus

METHODS = ("pictures", "pixels")
_PRECISION = ("stage1_precision", "stage2_precision", "stage2_evidence_at_k")


def _pool(rows: list[dict], key: str) -> float | None:
    """n-weighted mean of ``key`` over rows that have it."""
    have = [(r["n"], r[key]) for r in rows if r.get(key) is not None and r["n"]]
    total = sum(n for n, _ in have)
    return sum(n * v for n, v in have) / total if total else None


def compare_stage_one(params: Params, corpus: Corpus, engine, answerer, splits: list[str]) -> dict:
    """Rows per (split, system) and pooled rows; ``engine`` is a RagEngine, ``answerer`` a ReaderAnswerer."""
    from components.evaluation.answering import AnsweringBench
    from components.evaluation.evaluate import choose_region_params
    from components.rag.engine import RagEngine

    params, region_choice = choose_region_params(params, corpus, engine)
    image_only = Corpus(
        corpus.root, corpus.pages, [q for q in corpus.questions if q.query_image and q.answers]
    )
    rows: list[dict] = []
    for split in splits:
        single_done = False
        for method in METHODS:
            rag = params.rag.model_copy(update={"image_stage_one": method})
            run_params = params.model_copy(update={"rag": rag})
            bench = AnsweringBench(
                run_params, image_only, RagEngine(engine.retriever, engine.index, run_params), split
            )
            if not bench.items:
                break
            precision = bench.retrieval_precision()
            scored = bench.score(answerer, "two_stage")
            methods_used = sorted(
                {it.two_stage["trace"].method for it in bench.items if it.two_stage}
            )
            rows.append(
                {
                    "split": split,
                    "system": f"two_stage:{method}",
                    "stage_one_ran": methods_used,
                    "n": scored["n"],
                    "anls": scored["anls"],
                    "em": scored["em"],
                    **{k: precision.get(k) for k in _PRECISION},
                }
            )
            if not single_done:
                single = bench.score(answerer, "single_stage")
                rows.append(
                    {
                        "split": split,
                        "system": "single_stage",
                        "n": single["n"],
                        "anls": single["anls"],
                        "em": single["em"],
                        "stage1_precision": None,
                        "stage2_precision": precision["single_stage_precision"],
                        "stage2_evidence_at_k": precision["single_stage_evidence_at_k"],
                    }
                )
                single_done = True
    pooled = []
    for system in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == system]
        pooled.append(
            {
                "split": "+".join(r["split"] for r in mine),
                "system": system,
                "n": sum(r["n"] for r in mine),
                **{k: _pool(mine, k) for k in ("anls", "em", *_PRECISION)},
            }
        )
    return {
        "splits": splits,
        "regions": region_choice,
        "k": answerer.p.contexts,
        "rows": rows,
        "pooled": pooled,
    }


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def write_report(result: dict, out_dir: Path) -> tuple[Path, Path]:
    """``two_stage_stage_one.json`` and ``.md`` under ``out_dir`` (atomic: written then renamed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "| split | system | n | ANLS | EM | stage-1 precision | stage-2 precision | evidence in top k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"] + result["pooled"]:
        lines.append(
            f"| {r['split']} | {r['system']} | {r['n']} | {_fmt(r['anls'])} | {_fmt(r['em'])} | "
            f"{_fmt(r['stage1_precision'])} | {_fmt(r['stage2_precision'])} | {_fmt(r['stage2_evidence_at_k'])} |"
        )
    paths = []
    for name, text in (
        ("two_stage_stage_one.json", json.dumps(result, indent=2, default=str)),
        ("two_stage_stage_one.md", "\n".join(lines) + "\n"),
    ):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out_dir / name)
        paths.append(out_dir / name)
    return paths[0], paths[1]


def run_stage_one_comparison(
    params: Params,
    corpus: Corpus,
    model_dir: Path,
    index_dir: Path,
    reader_dir: Path,
    splits: list[str],
    out_dir: Path,
) -> dict:
    """Load the retriever, index and reader, compare, and write the report; returns the result."""
    from components.rag.engine import RagEngine
    from components.reader.answerer import ReaderAnswerer
    from components.reader.io import load_reader

    engine = RagEngine.from_dirs(Path(model_dir), Path(index_dir), params)
    reader = load_reader(Path(reader_dir))
    params = params.model_copy(update={"reader": reader.params})  # contexts and m as trained
    result = compare_stage_one(params, corpus, engine, ReaderAnswerer(reader, engine.index), splits)
    result["index_pictures"] = len(engine.index.pictures)
    json_path, md_path = write_report(result, out_dir)
    result["report"] = {"json": str(json_path), "markdown": str(md_path)}
    return result
