"""Where the faiss candidate stage runs: on all GPUs when faiss-gpu sees CUDA devices, else on CPU.

Only the candidate index moves; compressed cells are scored with numpy either way. HNSW has no
GPU implementation in faiss, so an HNSW candidate index stays on the CPU even when GPUs exist.
"""

from __future__ import annotations

import faiss

GPU_CAPABLE = ("flat", "ivf")


def gpu_count() -> int:
    # faiss-cpu builds have get_num_gpus() returning 0; very old builds lack it altogether.
    getter = getattr(faiss, "get_num_gpus", None)
    return int(getter()) if getter is not None else 0


def select_device(kind: str) -> str:
    """ "gpu" when faiss-gpu has a device and the index kind runs there, else "cpu"."""
    if kind in GPU_CAPABLE and gpu_count() > 0 and hasattr(faiss, "index_cpu_to_all_gpus"):
        return "gpu"
    return "cpu"


def to_device(index: faiss.Index, kind: str) -> tuple[faiss.Index, str]:
    """The index placed on the selected device, and that device's name."""
    device = select_device(kind)
    if device == "gpu":
        return faiss.index_cpu_to_all_gpus(index), device
    return index, device


def to_cpu(index: faiss.Index, device: str) -> faiss.Index:
    """A CPU copy for write_index (GPU indexes cannot be serialised directly)."""
    return faiss.index_gpu_to_cpu(index) if device == "gpu" else index
