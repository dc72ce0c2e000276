"""The markdown comparison table of an evaluation run (``report.md``)."""

from __future__ import annotations

COLUMNS = [
    ("page_r1", "page R@1"),
    ("page_r5", "page R@5"),
    ("ndcg5", "nDCG@5"),
    ("mrr", "MRR"),
    ("region_hit1", "region hit@1"),
    ("region_miou", "region mIoU"),
    ("anls", "ANLS"),
    ("em", "EM"),
    ("latency_ms_p50", "p50 ms"),
    ("latency_ms_p95", "p95 ms"),
]


def _fmt(value) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_per_type(type_rows: list[dict]) -> str:
    """Page R@1 and region hit@1 per question type (rows), one column pair per system."""
    systems = list(dict.fromkeys(r["system"] for r in type_rows))
    types = list(dict.fromkeys(r["type"] for r in type_rows))
    by = {(r["type"], r["system"]): r for r in type_rows}
    lines = [
        "## Per question type (page R@1 / region hit@1)",
        "",
        "| type | n | " + " | ".join(systems) + " |",
        "|---|---|" + "---|" * len(systems),
    ]
    for t in types:
        n = max((by[(t, s)]["n"] for s in systems if (t, s) in by), default=0)
        cells = [
            f"{_fmt(by[(t, s)].get('page_r1'))} / {_fmt(by[(t, s)].get('region_hit1'))}" if (t, s) in by else "—"
            for s in systems
        ]
        lines.append(f"| {t} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_report(metrics: dict, type_rows: list[dict] | None = None) -> str:
    systems = metrics["systems"]
    lines = [
        f"# Evaluation on the `{metrics['split']}` split",
        "",
        f"{metrics['n_questions']} questions; dataset id `{metrics['dataset_id'][:16]}`.",
        "",
        "| system | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, values in systems.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(values.get(key)) for key, _ in COLUMNS) + " |")
    counts = metrics.get("counts", {})
    lines += [
        "",
        "Counts. Questions lacking a gold field (`n_with_*`) are skipped by the metrics that need it,",
        "never scored as misses:",
        "",
        "| count | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in counts.items()]
    lines += [
        "",
        "- `regionops`: the retriever at region level (top region across pages);",
        "  `region_miou` = IoU of the best region extracted on the gold page's own heatmap.",
        "- `page_level`: same model and ranking, region = the whole page.",
        "- `bm25_blocks` / `dense_blocks`: BM25 / MiniLM over text-layer blocks; region = best block.",
        "- ANLS/EM come from the region-text answerer (a heuristic over the top region's words, to be",
        "  replaced by the trained reader), applied identically to every system's top region.",
    ]
    notes = metrics.get("notes")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    if type_rows:
        lines += ["", render_per_type(type_rows).rstrip("\n")]
    return "\n".join(lines) + "\n"
