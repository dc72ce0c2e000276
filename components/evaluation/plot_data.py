"""Evaluation results as DVC plot series: recall@k per system, and regionops per question type.

``metrics.json`` and ``per_type.json`` hold every figure, but in shapes a plot template
cannot draw (nested by system; one row per type *and* system). These files are the same
figures, one row per x value, so the top-level ``plots`` in dvc.yaml can chart them and
``dvc plots diff`` can put two runs side by side.
"""

from __future__ import annotations

from pathlib import Path

from components.data.corpus import write_json_atomic

RECALL_AT = {1: "page_r1", 5: "page_r5"}  # k -> the metrics.json key of page recall@k
PLOTTED_SYSTEM = "regionops"


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def recall_at_k_rows(systems: dict[str, dict]) -> list[dict]:
    """``[{"k": 1, "<system>": R@1, ...}, {"k": 5, ...}]``.

    Every system gets its column, null where it has no recall: the plot names its y fields,
    and DVC refuses a plot whose field is missing from the file.
    """
    return [
        {"k": k, **{name: _number(values.get(key)) for name, values in systems.items()}}
        for k, key in RECALL_AT.items()
    ]


def per_type_rows(type_rows: list[dict], system: str = PLOTTED_SYSTEM) -> list[dict]:
    """One row per question type for ``system``: page R@1, region hit@1 and the question count."""
    return [
        {
            "type": r["type"],
            "n": r["n"],
            "page_r1": r.get("page_r1"),
            "region_hit1": r.get("region_hit1"),
        }
        for r in type_rows
        if r["system"] == system and r.get("page_r1") is not None
    ]


def write_plot_data(
    out_dir: Path, systems: dict[str, dict], type_rows: list[dict]
) -> dict[str, Path]:
    """Write ``plots/recall_at_k.json`` and ``plots/per_type_regionops.json`` under ``out_dir``."""
    folder = Path(out_dir) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "recall_at_k": folder / "recall_at_k.json",
        "per_type": folder / f"per_type_{PLOTTED_SYSTEM}.json",
    }
    write_json_atomic(paths["recall_at_k"], recall_at_k_rows(systems))
    write_json_atomic(paths["per_type"], per_type_rows(type_rows))
    return paths
