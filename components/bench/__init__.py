"""``make bench``: the served system's accuracy, index size and latency per storage mode, in one run.

One synthetic corpus of the largest size is generated and encoded once (through the index build's
path); each smaller size is its leading pages (whole document families, so near-duplicate
distractors stay together; the questions' wording follows splits assigned over the whole corpus,
ADR 18). At each size every storage mode's index answers the same questions through ``RagEngine``
exactly as served: dense and lexical channels fused (``rag.*`` in params.yaml), regions extracted
and snapped to layout blocks (``regions.*``). ``lexical_only`` (BM25+ and its block map, no learned
model) answers them too. A compressed mode is compared with float16 on the same questions (paired
bootstrap interval), so machine noise and question sampling cancel out.

With a real corpus, question -> regions latency is also measured on its pages replicated to
``real_pages``, alternating question by question with as many synthetic pages, so both figures
carry the same machine load. ``targets`` sets the figures against the issues' bars. The one-off
A/B experiments behind ADRs 7-20 are scripts in scripts/experiments/.

Modules: ``corpus`` (generate, encode, pick questions), ``served`` (one size: every storage mode
and ``lexical_only``), ``real`` (real-page latency), ``targets`` (modes, defaults, the bars),
``report`` (bench.md), ``run`` (``run_benchmark``). The names below are the package's interface
(the CLI's ``regionops bench``, tests, scripts/experiments/).
"""

from components.bench.real import real_corpus_dir, real_latency, replicated
from components.bench.run import run_benchmark
from components.bench.served import bench_size, lexical_only, lexical_timed, served_engine
from components.bench.targets import (
    COMPRESSED_DEFAULT,
    COMPRESSED_MODES,
    DEFAULT_LATENCY_QUESTIONS,
    DEFAULT_MAX_QUERIES,
    DEFAULT_REAL_PAGES,
    LATENCY_THREADS,
    REFERENCE_MODE,
    STORAGE_MODES,
    TARGET_BYTES_PER_PAGE,
    TARGET_ENCODE_PAGES_PER_S,
    TARGET_P50_MS,
    TARGET_R1_RATIO,
    TARGET_REAL_P50_MS,
    targets,
)

__all__ = [
    "COMPRESSED_DEFAULT",
    "COMPRESSED_MODES",
    "DEFAULT_LATENCY_QUESTIONS",
    "DEFAULT_MAX_QUERIES",
    "DEFAULT_REAL_PAGES",
    "LATENCY_THREADS",
    "REFERENCE_MODE",
    "STORAGE_MODES",
    "TARGET_BYTES_PER_PAGE",
    "TARGET_ENCODE_PAGES_PER_S",
    "TARGET_P50_MS",
    "TARGET_R1_RATIO",
    "TARGET_REAL_P50_MS",
    "bench_size",
    "lexical_only",
    "lexical_timed",
    "real_corpus_dir",
    "real_latency",
    "replicated",
    "run_benchmark",
    "served_engine",
    "targets",
]
