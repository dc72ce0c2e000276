"""MaxSim's float16 exact stage (ADR 28/29): the served path (gather every candidate row, widen
and multiply in 1,024-row blocks, then transpose to [pages, tokens, cells]) against gathering
and widening a few pages at a time straight from the stored codes. Same random unit cells and
token queries, alternating order; wall and CPU milliseconds at each thread count, and whether
the scores equal the served path's bit for bit.

``python -m scripts.experiments.maxsim_exact_stage_ab --pages 1000 --candidates 144 --tokens 14``
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch

from components.index.float16_scores import _BLOCK_ROWS, float16_token_scores
from components.model.encode import torch_threads
from scripts.experiments.common import exact_stage_parser


def served(codes: np.ndarray, positions: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """What ``components.index.maxsim.token_scores`` does for float16 storage."""
    scores = float16_token_scores(codes[np.asarray(positions, dtype=np.int64)], tokens)
    return np.ascontiguousarray(scores.transpose(0, 2, 1), dtype=np.float32)


def page_blocks(codes: np.ndarray, positions: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """float32 [len(positions), L, cells]: ⟨cell, token⟩ for the stored float16 ``codes``
    [pages, cells, dim] of the pages at ``positions`` (MaxSim's exact stage).

    The same products as ``float16_token_scores(codes[positions], tokens)`` transposed, bit for
    bit (each 1,024-row block is the same matrix product), but the pages are gathered and widened
    a block at a time, so neither the gathered float16 rows (28 MB for 144 candidate pages of
    256 × 384) nor their [pages, cells, L] scores are written out and read back.
    """
    if codes.dtype != np.float16:
        raise TypeError(f"page_blocks takes float16 codes, got {codes.dtype}")
    if codes.ndim != 3:
        raise ValueError(f"codes must be [pages, cells, dim], got shape {codes.shape}")
    _, n_cells, dim = codes.shape
    t = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32))
    if t.ndim != 2 or t.shape[1] != dim:
        raise ValueError(f"tokens have shape {tuple(t.shape)}, the cells {dim} dims")
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    n_tokens = t.shape[0]
    out = torch.empty(len(positions), n_tokens, n_cells, dtype=torch.float32)
    if n_cells == 0 or len(positions) == 0:
        return out.numpy()
    # whole pages per block, as close to _BLOCK_ROWS rows as a page allows: with 256 cells the
    # blocks are the gather-then-widen path's own 1,024-row blocks
    pages = max(1, _BLOCK_ROWS // n_cells)
    block = torch.empty(pages * n_cells, n_tokens, dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, len(positions), pages):
            chunk = positions[start : start + pages]
            rows = torch.from_numpy(codes[chunk].reshape(-1, dim))
            scores = block[: rows.shape[0]]
            torch.mm(rows.float(), t.T, out=scores)
            out[start : start + len(chunk)] = scores.view(len(chunk), n_cells, n_tokens).transpose(
                1, 2
            )
    return out.numpy()


def main() -> None:
    ap = exact_stage_parser(__doc__, repeats=60, threads=[2, 1])
    ap.add_argument("--tokens", type=int, default=14, help="question tokens (real dev median: 14)")
    ap.add_argument("--out")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((args.pages, args.cells, args.dim)).astype(np.float32)
    codes = (codes / np.linalg.norm(codes, axis=-1, keepdims=True)).astype(np.float16)
    paths = {
        "served (gather, widen, transpose)": served,
        "page blocks": page_blocks,
    }
    result: dict = {"load_start": os.getloadavg(), "threads": {}}
    for threads in args.threads:
        wall = {name: [] for name in paths}
        cpu = {name: [] for name in paths}
        equal = 0
        with torch_threads(threads):
            for r in range(args.repeats):
                positions = rng.choice(args.pages, args.candidates, replace=False)
                tokens = rng.standard_normal((args.tokens, args.dim)).astype(np.float32)
                tokens /= np.linalg.norm(tokens, axis=-1, keepdims=True)
                outs = {}
                names = list(paths) if r % 2 == 0 else list(paths)[::-1]
                for name in names:
                    c0, t0 = time.process_time(), time.perf_counter()
                    outs[name] = paths[name](codes, positions, tokens)
                    wall[name].append((time.perf_counter() - t0) * 1e3)
                    cpu[name].append((time.process_time() - c0) * 1e3)
                a, b = outs.values()
                equal += int(a.shape == b.shape and np.array_equal(a, b))
        result["threads"][threads] = {
            "wall_p50_ms": {n: round(float(np.median(v)), 3) for n, v in wall.items()},
            "cpu_p50_ms": {n: round(float(np.median(v)), 3) for n, v in cpu.items()},
            "bit_equal": f"{equal}/{args.repeats}",
        }
    result["load_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
