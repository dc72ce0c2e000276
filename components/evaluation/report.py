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
            f"{_fmt(by[(t, s)].get('page_r1'))} / {_fmt(by[(t, s)].get('region_hit1'))}"
            if (t, s) in by
            else "—"
            for s in systems
        ]
        lines.append(f"| {t} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _system_rows(systems: dict) -> list[str]:
    lines = [
        "| system | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, values in systems.items():
        lines.append(
            f"| {name} | " + " | ".join(_fmt(values.get(key)) for key, _ in COLUMNS) + " |"
        )
    return lines


def _title(metrics: dict) -> str:
    if metrics.get("docs"):
        return f"# Evaluation on `{metrics['docs']}` (every question; splits ignored)"
    return f"# Evaluation on the `{metrics['split']}` split"


def render_report(metrics: dict, type_rows: list[dict] | None = None) -> str:
    counts = metrics.get("counts", {})
    lines = [
        _title(metrics),
        "",
        f"{metrics['n_questions']} questions; dataset id `{metrics['dataset_id'][:16]}`.",
        "",
        "## All questions",
        "",
        *_system_rows(metrics["systems"]),
    ]
    text_only = metrics.get("systems_text_only")
    if text_only is not None:
        lines += [
            "",
            f"## Text-only questions ({counts.get('n_text_only', '?')} without a query image)",
            "",
            *_system_rows(text_only),
        ]
    recall = metrics.get("block_recall")
    if recall:  # components.evaluation.block_recall's summary
        overall = recall["overall"]
        by_type = ", ".join(
            f"{t} {_fmt(v['recall'])} (n={v['n']})" for t, v in recall["by_type"].items()
        )
        lines += [
            "",
            f"Block recall (gold boxes some layout block matches at IoU >= {recall['threshold']}: the "
            f"ceiling of region hit@1 for block-snapped regions): {_fmt(overall['recall'])} over "
            f"{overall['n']} boxed questions" + (f"; by type: {by_type}." if by_type else "."),
        ]
    lines += [
        "",
        "Counts. Questions lacking a gold field (`n_with_*`) are skipped by the metrics that need it,",
        "never scored as misses:",
        "",
        "| count | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in counts.items()]
    answerer = metrics.get("answerer", "text")
    answerer_text = (
        "the served span reader (one context: the region's words and cells)"
        if answerer == "reader"
        else "the text-layer answerer (a heuristic over the region's words)"
    )
    lines += [
        "",
        "- `regionops`: the retriever at region level (top region across pages), dense + lexical fused;",
        "  `region_miou` = IoU of the best region extracted on the gold page's own heatmap.",
        "- `regionops_dense`: the same with the lexical channel off.",
        "- `lexical_only`: the BM25+ lexical channel alone, no learned model: pages by BM25+, region =",
        "  the top page's lexical heatmap through the same region extraction and block snapping.",
        "- `page_level`: same model and ranking as regionops, region = the whole page.",
        "- `bm25_blocks` / `dense_blocks`: BM25+ (the lexical channel's, same tokenizer) / MiniLM over",
        "  text-layer blocks; region = best block.",
        "- ANLS/EM: every system's top region is answered by the same answerer, so the same region",
        f"  box gives the same answer whichever system found it: {answerer_text}.",
        "- Image questions: every system reads the text the served engine retrieves with (the",
        "  two-stage rewrite naming the pictured entity, or the question itself when stage 1 names",
        "  nothing), so the text-only systems get the same rewrite as regionops; the rewrite itself",
        "  comes from the model's stage 1 and its time is counted in the model systems' latency only.",
        "  Headline over all questions above; the text-only table has no image question at all.",
        "- Latency (ms per question): each system's own work, answering included; the model systems",
        "  include query encoding. One untimed warm-up question runs first (lazy model loads).",
    ]
    notes = metrics.get("notes")
    if notes:
        lines += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    if type_rows:
        lines += ["", render_per_type(type_rows).rstrip("\n")]
    return "\n".join(lines) + "\n"
