"""float16 exact scores of the candidate pages (ADR 29): the served gather-then-widen path against
widening chunks gathered straight from the stored codes, widening every row at once, and torch's
float16 matrix-vector product. Same pages, same query, in alternating order; wall and CPU
milliseconds at each thread count, and whether the scores equal the served path's bit for bit.

``python -m scripts.experiments.float16_gather_ab --pages 1000 --candidates 144 --dim 384``
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch

from components.index.float16_scores import float16_scores
from components.model.encode import torch_threads
from scripts.experiments.common import exact_stage_parser


def chunked_gather(codes: np.ndarray, positions: np.ndarray, query: np.ndarray, pages: int):
    dim = codes.shape[-1]
    table = torch.from_numpy(codes)
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    idx = torch.from_numpy(np.asarray(positions, dtype=np.int64))
    out = torch.empty(len(positions), codes.shape[1], dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, len(positions), pages):
            block = table.index_select(0, idx[start : start + pages]).reshape(-1, dim).float()
            torch.mv(block, q, out=out[start : start + pages].view(-1))
    return out.numpy()


def widen_once(codes: np.ndarray, positions: np.ndarray, query: np.ndarray):
    """One widening of every candidate row, one matrix-vector product: two parallel regions."""
    dim = codes.shape[-1]
    rows = torch.from_numpy(codes[positions].reshape(-1, dim))
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    with torch.inference_mode():
        return torch.mv(rows.float(), q).numpy().reshape(len(positions), -1)


def half_mv(codes: np.ndarray, positions: np.ndarray, query: np.ndarray):
    """torch's float16 matrix-vector product (its own accumulation: not bit-equal)."""
    dim = codes.shape[-1]
    rows = torch.from_numpy(codes[positions].reshape(-1, dim))
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32)).half()
    with torch.inference_mode():
        return torch.mv(rows, q).float().numpy().reshape(len(positions), -1)


def main() -> None:
    args = exact_stage_parser(__doc__, repeats=40, threads=[1, 2]).parse_args()
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((args.pages, args.cells, args.dim)).astype(np.float16)
    variants = {
        "gather_then_widen": lambda pos, q: float16_scores(codes[pos], q),
        "chunk_4_pages": lambda pos, q: chunked_gather(codes, pos, q, 4),
        "widen_once": lambda pos, q: widen_once(codes, pos, q),
        "half_mv": lambda pos, q: half_mv(codes, pos, q),
    }
    out = {"load_start": os.getloadavg()}
    for threads in args.threads:
        wall = {v: [] for v in variants}
        cpu = {v: [] for v in variants}
        equal = {v: True for v in variants}
        with torch_threads(threads):
            for r in range(args.repeats):
                pos = rng.choice(args.pages, args.candidates, replace=False)
                q = rng.standard_normal(args.dim).astype(np.float32)
                ref = float16_scores(codes[pos], q)  # the served path's scores, untimed
                names = list(variants) if r % 2 == 0 else list(variants)[::-1]
                for name in names:
                    t, c = time.perf_counter(), time.process_time()
                    s = variants[name](pos, q)
                    wall[name].append((time.perf_counter() - t) * 1e3)
                    cpu[name].append((time.process_time() - c) * 1e3)
                    equal[name] &= bool(np.array_equal(s, ref))
        out[f"threads_{threads}"] = {
            v: {
                "wall_p50_ms": round(float(np.median(wall[v])), 3),
                "cpu_p50_ms": round(float(np.median(cpu[v])), 3),
                "equal_bits": equal[v],
            }
            for v in variants
        }
    out["load_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
