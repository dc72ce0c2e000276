"""Inner products of float16 cell vectors with a float32 query, without a float32 copy of the cells.

numpy widens float16 element by element (~9–13 ms for the 128 candidate pages × 256 cells of one
query at 10k pages), which made float16 the slowest storage mode to search although it does the
least work. torch widens with SIMD; converting in blocks that stay in cache and multiplying each
block straight away takes ~3.9 ms on the same data (ADR 16). Scores are float32 dot products of
the widened vectors, as numpy's were (equal to ~1e-6, the summation order differs).
"""

from __future__ import annotations

import numpy as np
import torch

# Rows widened at once: 1024 × 128 float32 = 512 KiB stays in L2; 1024–2048 were fastest (ADR 16).
_BLOCK_ROWS = 1024


def float16_scores(cells: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float32 ⟨cell, query⟩ for float16 ``cells`` [..., dim] and a float32 ``query`` [dim]: shape [...]."""
    if cells.dtype != np.float16:
        raise TypeError(f"float16_scores takes float16 cells, got {cells.dtype}")
    dim = cells.shape[-1]
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32).reshape(-1))
    if q.shape[0] != dim:
        raise ValueError(f"query has {q.shape[0]} dims, the cells {dim}")
    rows = torch.from_numpy(np.ascontiguousarray(cells).reshape(-1, dim))
    out = torch.empty(rows.shape[0], dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, rows.shape[0], _BLOCK_ROWS):
            stop = start + _BLOCK_ROWS
            torch.mv(rows[start:stop].float(), q, out=out[start:stop])
    return out.numpy().reshape(cells.shape[:-1])


def float16_token_scores(cells: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """float32 ⟨cell, token⟩ for float16 ``cells`` [..., dim] and float32 ``tokens`` [L, dim]:
    shape [..., L] (MaxSim's exact stage; widened block by block as ``float16_scores`` does)."""
    if cells.dtype != np.float16:
        raise TypeError(f"float16_token_scores takes float16 cells, got {cells.dtype}")
    dim = cells.shape[-1]
    t = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32))
    if t.ndim != 2 or t.shape[1] != dim:
        raise ValueError(f"tokens have shape {tuple(t.shape)}, the cells {dim} dims")
    rows = torch.from_numpy(np.ascontiguousarray(cells).reshape(-1, dim))
    out = torch.empty(rows.shape[0], t.shape[0], dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, rows.shape[0], _BLOCK_ROWS):
            stop = start + _BLOCK_ROWS
            torch.mm(rows[start:stop].float(), t.T, out=out[start:stop])
    return out.numpy().reshape(*cells.shape[:-1], t.shape[0])
