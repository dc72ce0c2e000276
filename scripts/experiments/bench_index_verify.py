"""Load time of a region index with and without sha256 verification (docs/failure-modes.md).

Builds (once) a float16 index of 2000 random pages, 16x16 cells of 128 dims, in OUT (default
/tmp/regionops-verify-bench), then times three alternating loads each way.
Run from the repo root: `PYTHONPATH=. nice -n 10 .venv/bin/python scripts/experiments/bench_index_verify.py [OUT]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from components.config import IndexParams
from components.index.region_index import PageMeta, RegionIndex


def main(out: Path, pages: int = 2000) -> None:
    if not (out / "CURRENT").exists():
        cells = np.random.default_rng(0).standard_normal((pages, 256, 128), dtype=np.float32)
        metas = [PageMeta(page_id=f"d{i}#0", doc=f"d{i}") for i in range(pages)]
        RegionIndex.build(metas, cells, IndexParams(storage="float16"), "fp", 16).save(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"index bytes on disk: {size / 1e6:.1f} MB")
    for verify in (False, True) * 3:
        start = time.perf_counter()
        RegionIndex.load(out, verify=verify)
        print(f"verify={verify} load {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/regionops-verify-bench"))
