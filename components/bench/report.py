"""bench.md: the tables of a ``components.bench`` report (bench.json holds every figure)."""

from __future__ import annotations


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ratio(paired: dict | None) -> str:
    """A paired ratio with its interval and the questions only one side gets right."""
    if not paired:
        return "reference"
    if paired.get("ratio") is None:
        return "n/a"
    ci = (
        f" [{paired['ci_low']:.3f}, {paired['ci_high']:.3f}]"
        if paired.get("ci_low") is not None
        else ""
    )
    return f"{paired['ratio']:.3f}{ci} (+{paired['variant_only']}/−{paired['reference_only']})"


def _size_lines(size: str, idx: dict) -> list[str]:
    s = idx["served"]
    lines = [
        "",
        f"## {size} pages",
        "",
        f"- questions: {idx['queries']} (of {idx['questions_available']} text questions with a gold box)",
        (
            f"- served system (RagEngine): lexical weight {s['lexical_weight']}, {s['lexical_candidates']} BM25 "
            f"candidate pages, scope {s['lexical_scope']}, region term weights {s['region_term_weights']}, "
            f"snap {s['snap']}, C = {s['candidates']}, k = {s['k']}"
        ),
        (
            f"- latency: question text → ranked regions = the question's own encoding (p50 "
            f"{idx['query_encode_p50_ms']} ms, {s['latency_questions']} questions encoded one by one) + fused search "
            f"and region extraction; the search columns leave the encoding out (every question); "
            f"{s['threads']} torch threads"
        ),
        (
            "- ratios: to float16's figure on the same questions, paired bootstrap 95 % interval; "
            "+/− = questions only this system / only float16 gets right"
        ),
        "",
        (
            "| system | vector bytes/page | page R@1 | region hit@1 | page R@1 vs float16 | "
            "region hit@1 vs float16 | p50 ms | p95 ms | search p50 ms | search p95 ms |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [(mode, m["bytes_per_page"], m) for mode, m in idx["modes"].items()]
    rows.append(("lexical_only (no learned model)", 0, idx["lexical_only"]))
    for name, size_b, m in rows:
        lines.append(
            f"| {name} | {size_b} | {_fmt(m['page_r1'])} | {_fmt(m['region_hit1'])} | "
            f"{_ratio(m.get('page_r1_paired'))} | {_ratio(m.get('region_hit1_paired'))} | "
            f"{m['p50_ms']} | {m['p95_ms']} | {m.get('search_p50_ms', 'n/a')} | "
            f"{m.get('search_p95_ms', 'n/a')} |"
        )
    return lines


def _real_lines(real: dict | None) -> list[str]:
    if not real:
        return [
            "",
            "## Latency on real pages",
            "",
            (
                "Not measured: no real pages were given (`--real-docs`; `make bench` passes "
                "`$(REALDOCS)/dev` when its questions file exists, `make bench-real` builds it)."
            ),
        ]
    lines = [
        "",
        f"## Latency on real pages ({real['pages']} pages)",
        "",
        (
            f"- {real['real_pages']} real pages of `{real['source']}` (encoded at "
            f"{real['real_encode_pages_per_s']} pages/s) replicated to {real['pages']}, beside "
            f"{real['synthetic_pages']} synthetic pages; {real['questions']} questions a side, one of each in "
            f"turn; {real['threads']} torch threads"
        ),
        *(
            [
                (
                    f"- imported through `regionops import`'s path: {imp['pages']} pages, {imp['questions']} questions "
                    f"({imp['quarantined_documents']} documents and {imp['quarantined_questions']} questions quarantined)"
                )
            ]
            if (imp := real.get("imported"))
            else []
        ),
        *(
            [
                (
                    f"- region rule {r['rule']} (threshold {r['threshold']} {r['threshold_value']}, "
                    f"score {r['score']}, snap {r['snap']}); load average {real['loadavg_start']} "
                    f"at the start of this part, {real['loadavg_end']} at its end: absolute "
                    "figures move with the load, the real/synthetic ratio is measured under the same"
                )
            ]
            if (r := real.get("regions")) and real.get("loadavg_end")
            else []
        ),
        "",
        (
            "| storage | real p50 ms | real p95 ms | synthetic p50 ms | synthetic p95 ms | "
            "real / synthetic p50 | real: encode p50 ms | real: search + regions p50 ms | "
            "synthetic: encode p50 ms | synthetic: search + regions p50 ms |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, m in real["modes"].items():
        rr, sy = m["real"], m["synthetic"]
        lines.append(
            f"| {mode} | {rr['p50_ms']} | {rr['p95_ms']} | {sy['p50_ms']} | {sy['p95_ms']} | "
            f"{m.get('real_over_synthetic_p50', 'n/a')} | {rr.get('encode_p50_ms', 'n/a')} | "
            f"{rr.get('search_regions_p50_ms', 'n/a')} | {sy.get('encode_p50_ms', 'n/a')} | "
            f"{sy.get('search_regions_p50_ms', 'n/a')} |"
        )
    return lines


def _real_value(real: dict) -> str:
    if real["value"] is None:
        return "not measured"
    return f"{real['value']} ms ({real['threads']} threads, {real['pages']} pages)"


def _target_lines(t: dict) -> list[str]:
    c, real = t["compressed"], t["real_p50_ms"]
    ci = c.get("r1_ratio_ci")
    ci_text = f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci and ci[0] is not None else ""
    return [
        "",
        f"## Targets at {t['pages']} pages",
        "",
        "| target | bar | measured | met |",
        "|---|---|---|---|",
        (
            f"| p50 question → regions, synthetic pages (worst mode) | ≤ {t['p50_ms']['bar']} ms | "
            f"{t['p50_ms']['worst_mode_value']} ms | {t['p50_ms']['met']} |"
        ),
        (
            f"| p50 question → regions, real pages ({real['mode']}, {real['bar_threads']} threads, ≥ 1000 pages) "
            f"| ≤ {real['bar']} ms | {_real_value(real)} | {'not decided' if real['met'] is None else real['met']} |"
        ),
        (
            f"| compressed index ({c['best_mode']}) | ≤ {c['bar_bytes_per_page']} B/page at fused page R@1 ≥ "
            f"{c['bar_r1_ratio']} of {c['reference']}'s | {c['bytes_per_page']} B/page, ratio {_fmt(c['r1_ratio'])}"
            f"{ci_text} on {c['queries']} questions | {c['met']} |"
        ),
        (
            f"| encoding | ≥ {t['encode']['bar_pages_per_s']} pages/s | {t['encode']['value']} pages/s | "
            f"{t['encode']['met']} |"
        ),
    ]


def render_markdown(report: dict) -> str:
    enc, gen, m = report["encode"], report["generate"], report["machine"]
    lines = [
        "# regionops benchmark",
        "",
        (
            f"- generator: {gen['pages_per_s']} pages/s; encoder: {enc['pages_per_s']} pages/s over {enc['pages']} "
            f"pages ({enc['workers']} process(es) × {enc['threads']} thread(s); trained model: {enc['trained_model']})"
        ),
        f"- machine: {m['cpus']} CPUs, load average at start {m['loadavg_start']}, at end {m['loadavg_end']}",
    ]
    for size, idx in report["sizes"].items():
        lines += _size_lines(size, idx)
    lines += _real_lines(report.get("real_latency"))
    lines += _target_lines(report["targets"])
    return "\n".join(lines) + "\n"
