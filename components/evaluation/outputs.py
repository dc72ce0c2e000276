"""Write an evaluation's declared outputs into its folder: metrics.json, per_type.{json,md},
per_question.jsonl, report.md, the plot series and the highlight images."""

from __future__ import annotations

import json
from pathlib import Path

from components.config import Params
from components.data.corpus import Corpus, write_json_atomic
from components.evaluation.highlights import highlight_sample, write_highlights
from components.evaluation.plot_data import write_plot_data
from components.evaluation.report import render_per_type, render_report
from components.rag.engine import RagEngine


def _write_per_question(path: Path, records: list[dict]) -> None:
    """One line per question: its id, type and every system's scores, so that two runs on the same
    questions can be compared question by question (paired intervals in the retriever ablation),
    and what each system returned (top page, top region box, answer)."""
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            q = record["question"]
            outputs = {
                name: {
                    "page": out.top_page,
                    "box": None
                    if out.top_box is None
                    else [round(float(v), 6) for v in out.top_box],
                    "answer": out.answer,
                }
                for name, out in record["outputs"].items()
            }
            f.write(
                json.dumps(
                    {
                        "id": q.id,
                        "type": q.type,
                        "query_image": bool(q.query_image),
                        "scores": record["scores"],
                        "outputs": outputs,
                    }
                )
                + "\n"
            )


def write_outputs(
    out_dir: Path, metrics: dict, scored: dict, corpus: Corpus, engine: RagEngine, params: Params
) -> None:
    """metrics.json, per_type.{json,md}, per_question.jsonl, report.md and highlights/ into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    type_rows, records = scored["type_rows"], scored["records"]
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_json_atomic(out_dir / "per_type.json", type_rows)
    _write_per_question(out_dir / "per_question.jsonl", records)
    (out_dir / "report.md").write_text(render_report(metrics, type_rows), encoding="utf-8")
    (out_dir / "per_type.md").write_text(render_per_type(type_rows), encoding="utf-8")
    write_plot_data(out_dir, metrics["systems"], type_rows)  # the series dvc.yaml's plots draw
    highlights = out_dir / "highlights"
    if highlights.exists():
        for old in highlights.glob("*.png"):
            old.unlink()
    sample = highlight_sample(records, params.evaluate.n_highlights, params.seed)
    write_highlights(sample, corpus, engine, highlights)
