"""make bench on a tiny corpus: every figure present and consistent with the exact reference."""

import json

import pytest

from components.bench import STORAGE_MODES, run_benchmark

pytestmark = pytest.mark.slow


def test_bench_writes_every_figure(tiny_params, tmp_path):
    report = run_benchmark(tiny_params, pages=24, out_dir=tmp_path, model_dir=None, max_queries=1000)
    on_disk = json.loads((tmp_path / "bench.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert (tmp_path / "bench.md").read_text().startswith("# regionops benchmark")
    idx = report["index"]
    assert idx["pages"] >= 12 and idx["queries"] > 0
    assert 0.0 <= idx["candidate_recall"] <= 1.0
    assert report["encode"]["pages_per_s"] > 0 and report["generate"]["pages_per_s"] > 0
    assert report["encode"]["trained_model"] is False
    assert set(idx["modes"]) == set(STORAGE_MODES)
    sizes = {mode: m["cells_bytes_per_page"] for mode, m in idx["modes"].items()}
    assert sizes["pq"] < sizes["float16"] and sizes["binary"] < sizes["float16"]
    assert sizes["pq_residual"] < sizes["float16"]
    ab = report["encode"]["threads_ab"]
    assert ab["threads"]["configured"] == tiny_params.index.encode_threads
    assert min(ab["pages_per_s"].values()) > 0 and ab["max_abs_feature_diff"] < 1e-4
    # 24 pages are too few to start encoder processes (ADR 15): one process, no side-by-side figure.
    assert report["encode"]["workers"] == 1 and report["encode"]["workers_ab"] is None
    assert idx["query_encode_p50_ms"] > 0
    qa = idx["query_encode_ab"]  # eager MiniLM vs its frozen graph, same questions (ADR 15)
    assert qa["questions"] == idx["queries"] and qa["max_abs_vector_diff"] < 1e-4
    assert qa["p50_ms"]["eager"] > 0 and qa["p50_ms"]["traced"] > 0
    for m in idx["modes"].values():
        assert m["p50_ms"] <= m["p95_ms"] and m["search_p50_ms"] <= m["search_p95_ms"]
        # Latency is question -> regions: every question's own encoding is inside p50, not inside search_p50.
        assert m["search_p50_ms"] < m["p50_ms"]
        # Ratios carry their paired uncertainty over the same questions as exact search.
        for key, ratio in (("r1_paired", m["r1_ratio"]), ("hit1_paired", m["hit1_ratio"])):
            paired = m[key]
            assert paired["questions"] == idx["queries"]
            assert paired["ratio"] == pytest.approx(ratio) if ratio is not None else paired["ratio"] is None
            if paired["ci_low"] is not None:
                assert paired["ci_low"] <= paired["ratio"] <= paired["ci_high"]
    # pq_residual's candidate stage is its stored centroids when params say so (ADR 12); others keep theirs.
    stored = tiny_params.index.residual_candidates == "stored"
    assert idx["modes"]["pq_residual"]["candidate_stage"] == ("stored" if stored else tiny_params.index.candidate_vectors)
    assert idx["modes"]["float16"]["candidate_stage"] == tiny_params.index.candidate_vectors
    # Both scans of the stored stage timed side by side; the re-ranked fast scan returns the exact pages.
    ab = idx["modes"]["pq_residual"]["stage_scan_ab"]
    assert ab["queries"] == min(idx["queries"], 300) and ab["same_candidates"] == 1.0
    assert ab["p50_ms"]["exact"] > 0 and ab["p50_ms"]["fast"] > 0
    # Every question of the pages is used when there are fewer than max_queries.
    assert idx["queries"] == idx["questions_available"]
    assert "R@1 ratio [95 % CI]" in (tmp_path / "bench.md").read_text()
    # ADR 16: the candidates' scores as before and as now, same pages: equal scores, both timed.
    for mode in ("float16", "binary", "pq_residual"):
        heat = idx["modes"][mode]["heatmap_ab"]
        assert heat["queries"] == min(idx["queries"], 300) and heat["max_abs_diff"] < 1e-4
        assert heat["p50_ms"]["before"] > 0 and heat["p50_ms"]["after"] > 0
    assert "heatmap_ab" not in idx["modes"]["pq"]
    shards = idx["modes"]["pq_residual"]["shards_ab"]  # one shard vs parallel shards: identical scores
    assert shards["shards"] == tiny_params.index.residual_fast_scan_threads and shards["same_scores"] == 1.0
    assert "parallel threads" in (tmp_path / "bench.md").read_text()
    # ADR 18: pq_residual coded against its nearest centroid vs the best of its 8 nearest, same pages
    # and questions; the configured coding is the index above, and the best-of coding never
    # reconstructs the cells worse (both indexes train the same codebooks).
    # ADR 20: the configured clipped centroid range against min-max, same pages and questions; the
    # configured side is the index above.
    ranges = idx["modes"]["pq_residual"]["coarse_range_ab"]
    assert ranges["configured"]["range"] == tiny_params.index.residual_coarse_range != "minmax"
    assert ranges["other"]["range"] == "minmax" and ranges["other"]["arg"] == 0.0
    assert ranges["configured"]["r1_ratio"] == pytest.approx(idx["modes"]["pq_residual"]["r1_ratio"])
    assert ranges["other"]["r1_paired"]["questions"] == idx["queries"]
    assert min(ranges["configured"]["reconstruction_error"], ranges["other"]["reconstruction_error"]) > 0
    assert "level range" in (tmp_path / "bench.md").read_text()
    choice = idx["modes"]["pq_residual"]["centroid_choice_ab"]
    assert choice["configured"] == tiny_params.index.residual_centroid_choices == 1 and choice["choices"] == 8
    best, near = choice["best_of"], choice["nearest"]
    assert near["r1_ratio"] == pytest.approx(idx["modes"]["pq_residual"]["r1_ratio"])
    assert best["reconstruction_error"] <= near["reconstruction_error"]
    assert best["r1_paired"]["questions"] == idx["queries"] and best["build_s"] > 0
    assert "best of the 8 nearest" in (tmp_path / "bench.md").read_text()
