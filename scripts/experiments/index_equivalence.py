"""Search results of the region index in every storage mode and candidate stage, as JSON (issue 30).

Run it on two checkouts and diff the outputs: a refactor of ``components/index`` that keeps the
behaviour gives identical files. Two corpora:

- a small synthetic corpus (``components.data.synthetic``, the tests' tiny sizes) encoded by a tiny
  untrained retriever; its questions are the queries (dense, filtered, exhaustive and lexical);
- clustered synthetic cell vectors (tests/support/cell_vectors.py) large enough for the pq_residual stored
  stage's inverted lists (ADR 17).

For each configuration the index is built, searched, saved, loaded and searched again, grown by
``add`` and shrunk by ``delete_doc``. With ``--save-dir`` the saved indexes are kept; with
``--load-dir`` indexes another checkout saved are loaded and searched (old indexes must still load).

    python -m scripts.experiments.index_equivalence --out eq.json [--save-dir D | --load-dir D]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import TINY_OVERRIDES
from tests.support.cell_vectors import clustered_pages, queries_near_cells, two_page_docs

# Configurations by the index parameters' flat (pre-issue-30) names; mapped to the nested
# sections where the checkout has them (components.config.upgrade_index_params).
CORPUS_CONFIGS = {
    "float16_flat_centroids": {},
    "float16_hnsw_pooled": {"faiss": "hnsw", "candidate_vectors": "pooled"},
    "float16_ivf_cells": {
        "faiss": "ivf",
        "candidate_vectors": "cells",
        "ivf_nlist": 4,
        "ivf_nprobe": 2,
    },
    "float16_ivf_centroids": {
        "faiss": "ivf",
        "ivf_nlist": 4,
        "ivf_nprobe": 2,
        "centroids_per_page": 3,
    },
    "pq_flat_centroids": {"storage": "pq", "pq_m": 8, "pq_train_cells": 4096},
    "pq_hnsw_cells": {
        "storage": "pq",
        "pq_m": 8,
        "faiss": "hnsw",
        "candidate_vectors": "cells",
        "pq_train_cells": 4096,
    },
    "binary_flat_centroids": {"storage": "binary"},
    "binary_flat_pooled": {"storage": "binary", "candidate_vectors": "pooled"},
    "residual_stored_fast": {
        "storage": "pq_residual",
        "residual_centroids": 16,
        "residual_pq_m": 8,
        "pq_train_cells": 4096,
    },
    "residual_stored_exact": {
        "storage": "pq_residual",
        "residual_centroids": 16,
        "residual_pq_m": 8,
        "residual_fast_scan": False,
        "pq_train_cells": 4096,
    },
    "residual_stored_sq8": {
        "storage": "pq_residual",
        "residual_centroids": 8,
        "residual_pq_m": 4,
        "residual_coarse_bits": 8,
        "residual_pq_bits": 6,
        "pq_train_cells": 4096,
    },
    "residual_separate_hnsw": {
        "storage": "pq_residual",
        "residual_centroids": 16,
        "residual_pq_m": 8,
        "residual_candidates": "separate",
        "faiss": "hnsw",
        "residual_centroid_choices": 3,
        "pq_train_cells": 4096,
    },
}
CLUSTER_CONFIGS = {
    "residual_lists": {
        "storage": "pq_residual",
        "residual_pq_m": 8,
        "residual_centroids": 16,
        "residual_coarse_bits": 4,
        "candidates": 24,
        "pq_train_cells": 4096,
    },
    "residual_lists_probe_all": {
        "storage": "pq_residual",
        "residual_pq_m": 8,
        "residual_centroids": 16,
        "candidates": 24,
        "pq_train_cells": 4096,
        "residual_stage_probe": 1.0,
    },
    "residual_shards_no_lists": {
        "storage": "pq_residual",
        "residual_pq_m": 8,
        "residual_centroids": 16,
        "candidates": 24,
        "pq_train_cells": 4096,
        "residual_stage_lists": 0,
    },
    "pq_cells_cluster": {
        "storage": "pq",
        "pq_m": 8,
        "candidate_vectors": "cells",
        "candidates": 24,
        "pq_train_cells": 4096,
    },
}


def index_params(flat: dict, base: dict | None = None):
    from components.config import IndexParams

    tree = {**(base or {}), **flat}
    try:
        from components.config import upgrade_index_params
    except ImportError:  # a checkout from before the nested sections
        return IndexParams.model_validate(tree)
    return IndexParams.model_validate(upgrade_index_params(tree))


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:16]


def hits_record(hits) -> list:
    return [[h.page_id, repr(float(h.score)), digest(h.heatmap)] for h in hits]


def run_queries(
    index, queries: np.ndarray, texts: list[str] | None, k: int, collections: list[str]
) -> dict:
    out: dict[str, list] = {
        "dense": [],
        "filtered": [],
        "exhaustive": [],
        "lexical": [],
        "region": [],
    }
    for i, q in enumerate(queries):
        out["dense"].append(hits_record(index.search(q, k)))
        out["filtered"].append(
            hits_record(
                index.search(q, k, filters={"collection": collections[i % len(collections)]})
            )
        )
        if i % 5 == 0:
            out["exhaustive"].append(hits_record(index.search(q, k, exhaustive=True)))
        if texts:
            hits = index.search(
                q,
                k,
                query_text=texts[i],
                lexical_weight=0.5,
                lexical_candidates=4,
                lexical_scope="block",
            )
            out["lexical"].append(hits_record(hits))
            out["region"].append(
                [digest(m) for m in index.region_heatmaps(hits, texts[i], 0.5, "block")]
            )
            if hits:
                out["region"].append(
                    digest(index.heatmap(hits[0].page_id, q, texts[i], 0.5, "block", "page"))
                )
    return out


def exercise(
    name: str, index, queries, texts, k, collections, metas, cells, save_dir: Path | None
) -> dict:
    from components.index.region_index import RegionIndex

    record = {
        "stats": {
            key: index.stats()[key]
            for key in ("pages", "storage", "candidate_vectors", "bytes_per_page")
        },
        "built": run_queries(index, queries, texts, k, collections),
        "decoded": digest(index.decoded_cells(slice(0, 3))),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = (save_dir / name) if save_dir else Path(tmp) / name
        index.save(folder)
        loaded = RegionIndex.load(folder, expected_fingerprint="fp")
        record["loaded"] = run_queries(
            loaded, queries[:10], texts[:10] if texts else None, k, collections
        )
    docs = sorted({m.doc for m in index.metas})
    index.delete_doc(docs[0])
    record["after_delete"] = run_queries(
        index, queries[:10], texts[:10] if texts else None, k, collections
    )
    first = [i for i, m in enumerate(metas) if m.doc == docs[0]]
    index.add([metas[i] for i in first], cells[first])
    record["after_add"] = run_queries(
        index, queries[:10], texts[:10] if texts else None, k, collections
    )
    return record


def corpus_inputs(work: Path):
    from components.config import load_params
    from components.data.corpus import load_corpus
    from components.data.synthetic import generate_corpus
    from components.index.region_index import PageMeta
    from components.model.encode import encode_pages, encode_queries
    from components.model.retriever import build_retriever

    params = load_params(REPO / "params.yaml", [*TINY_OVERRIDES, "data.n_docs=24"])
    generate_corpus(params, work / "corpus")
    corpus = load_corpus(work / "corpus")
    import torch

    torch.manual_seed(0)
    model = build_retriever(params.model)
    cells = encode_pages(model, corpus, corpus.pages, progress=False, threads=1)
    texts = [q.question for q in corpus.questions][:50]
    queries = encode_queries(model, texts)
    metas = [PageMeta.from_page(p, corpus.load_image(p)) for p in corpus.pages]
    return metas, cells, queries, texts, params.model.grid


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--save-dir", type=Path, default=None, help="keep the saved indexes here")
    ap.add_argument(
        "--load-dir", type=Path, default=None, help="load and search indexes saved here"
    )
    args = ap.parse_args()
    from components.index.region_index import RegionIndex

    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        metas, cells, queries, texts, grid = corpus_inputs(Path(tmp))
    result["inputs"] = {"cells": digest(cells), "queries": digest(queries)}
    sets = [("corpus", CORPUS_CONFIGS, metas, cells, queries, texts, grid, 5)]
    pages = clustered_pages(300, 8, 64, seed=3)
    cluster_metas = two_page_docs(len(pages))
    sets.append(
        (
            "cluster",
            CLUSTER_CONFIGS,
            cluster_metas,
            pages,
            queries_near_cells(pages, 50, seed=4),
            None,
            8,
            10,
        )
    )
    for set_name, configs, set_metas, set_cells, set_queries, set_texts, set_grid, k in sets:
        set_collections = sorted({m.collection for m in set_metas})
        for name, flat in configs.items():
            key = f"{set_name}/{name}"
            if args.load_dir is not None:
                loaded = RegionIndex.load(args.load_dir / name, expected_fingerprint="fp")
                result[key] = {
                    "loaded_foreign": run_queries(
                        loaded, set_queries, set_texts, k, set_collections
                    )
                }
                continue
            params = index_params(flat, {"candidates": 8} if set_name == "corpus" else None)
            index = RegionIndex.build(set_metas, set_cells, params, "fp", set_grid, seed=0)
            result[key] = exercise(
                name,
                index,
                set_queries,
                set_texts,
                k,
                set_collections,
                set_metas,
                set_cells,
                args.save_dir,
            )
            print(key, "done", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
