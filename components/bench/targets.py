"""The benchmark's storage modes, its defaults and the issues' bars it reports against."""

from __future__ import annotations

STORAGE_MODES = ("float16", "pq", "binary", "pq_residual")
COMPRESSED_MODES = ("pq", "binary", "pq_residual")
REFERENCE_MODE = "float16"  # the served default: compressed modes are rated against it
COMPRESSED_DEFAULT = "pq_residual"  # the compressed mode under the size bar (ADR 11, ADR 20)
# The issues' bars. They are checked, never tuned: a miss is reported as a miss.
TARGET_P50_MS = 20.0  # issue 6: synthetic pages, worst storage mode
TARGET_REAL_P50_MS = 30.0  # issue 25: real pages, float16, LATENCY_THREADS threads
TARGET_BYTES_PER_PAGE = 8 * 1024
TARGET_R1_RATIO = 0.97  # of float16's fused page R@1, on the same questions
TARGET_ENCODE_PAGES_PER_S = 20.0
# torch intra-op threads while answering questions: a served process on the 2-core machine (the
# issue 25 bar is set at this count).
LATENCY_THREADS = 2
# Questions per size (every question of the size's pages up to this many, spread over them);
# 500 left ratios ±0.05 noisy between runs (ADR 11, ADR 12).
DEFAULT_MAX_QUERIES = 5000
# Real pages are replicated to at least this many for their latency figure (issue 25).
DEFAULT_REAL_PAGES = 1000
# Questions timed from their text (each encoded on its own) per size and per side of the real-page
# comparison; accuracy uses every question.
DEFAULT_LATENCY_QUESTIONS = 200


def targets(index: dict, encode: dict, real: dict | None) -> dict:
    """The issues' bars against the largest size's figures; ``met`` is computed, never asserted."""
    modes = index["modes"]
    small = {
        m: modes[m]
        for m in COMPRESSED_MODES
        if m in modes and modes[m]["bytes_per_page"] <= TARGET_BYTES_PER_PAGE
    }

    def ratio(m: str) -> float:
        return modes[m]["page_r1_paired"]["ratio"] or 0.0

    best = max(small, key=ratio) if small else None
    paired = modes[best]["page_r1_paired"] if best else {}
    worst = max((m["p50_ms"] for m in modes.values()), default=None)
    real_p50 = real["modes"][REFERENCE_MODE]["real"]["p50_ms"] if real else None
    # The real-page bar is set at LATENCY_THREADS threads on >= 1k pages: another run does not decide it.
    real_decides = (
        real_p50 is not None
        and real["threads"] == LATENCY_THREADS
        and real["pages"] >= DEFAULT_REAL_PAGES
    )
    return {
        "pages": index["pages"],
        "p50_ms": {
            "bar": TARGET_P50_MS,
            "worst_mode_value": worst,
            "met": worst is not None and worst <= TARGET_P50_MS,
        },
        "real_p50_ms": {
            "bar": TARGET_REAL_P50_MS,
            "mode": REFERENCE_MODE,
            "bar_threads": LATENCY_THREADS,
            "threads": real["threads"] if real else None,
            "pages": real["pages"] if real else None,
            "value": real_p50,
            "met": (real_p50 <= TARGET_REAL_P50_MS) if real_decides else None,
        },
        "compressed": {
            "bar_bytes_per_page": TARGET_BYTES_PER_PAGE,
            "bar_r1_ratio": TARGET_R1_RATIO,
            "reference": REFERENCE_MODE,
            "best_mode": best,
            "bytes_per_page": modes[best]["bytes_per_page"] if best else None,
            "r1_ratio": paired.get("ratio"),
            "r1_ratio_ci": [paired.get("ci_low"), paired.get("ci_high")] if best else None,
            "queries": index["queries"],
            "met": bool(best and ratio(best) >= TARGET_R1_RATIO),
        },
        "encode": {
            "bar_pages_per_s": TARGET_ENCODE_PAGES_PER_S,
            "value": encode["pages_per_s"],
            "met": encode["pages_per_s"] >= TARGET_ENCODE_PAGES_PER_S,
        },
    }
