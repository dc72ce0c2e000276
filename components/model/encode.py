"""Batch encoders used by indexing, search and evaluation: pages -> cell vectors, queries -> vectors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from components.data.corpus import Corpus
from components.data.schema import Page
from components.model.featurize import collate_pages, image_to_pixels
from components.model.frozen_text import traced_text_encoder
from components.model.retriever import RegionRetriever


class _PageBatches(Dataset):
    """Item i = the collated features of the i-th batch of pages.

    Featurizing a whole batch at once lets the frozen MiniLM read every page's text layer in
    one padded pass (PageFeaturizer.many), which is what dominates CPU encoding time.
    """

    def __init__(self, model: RegionRetriever, corpus: Corpus, pages: list[Page], batch_size: int):
        self.featurizer, self.corpus, self.pages, self.batch_size = (
            model.featurizer,
            corpus,
            pages,
            batch_size,
        )

    def __len__(self) -> int:
        return (len(self.pages) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        pages = self.pages[i * self.batch_size : (i + 1) * self.batch_size]
        return collate_pages(
            self.featurizer.many(pages, [self.corpus.load_image(p) for p in pages])
        )


def _eval_mode(model: RegionRetriever) -> None:
    # eval() walks every submodule (~2 ms for MiniLM): a served query pays it only if training left it on.
    if model.training:
        model.eval()


def _device(model: RegionRetriever) -> torch.device:
    return next(model.parameters()).device


def text_tokenizer(model: RegionRetriever):
    """The MiniLM tokenizer the model was trained with (for block baselines, readers)."""
    return model.tokenizer


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (None: leave torch's setting), then restore it.

    Why: on a shared 2-core machine a parallel region waits at its barrier for a thread the OS
    has descheduled, so tiny ops (index_add_ on a page's word pieces) took 170 ms at 2 threads
    and 0.3 ms at 1 (ADR 11).
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.inference_mode()
def encode_pages(
    model: RegionRetriever,
    corpus: Corpus,
    pages: list[Page],
    batch_size: int = 16,
    progress: bool = True,
    num_workers: int = 0,
    threads: int | None = None,
) -> np.ndarray:
    """float32 [N, G*G, dim]: the L2-normalised cell vectors of each page, in ``pages`` order.

    ``threads``: torch intra-op threads while encoding (``index.encode_threads``); the features
    do not depend on it.
    """
    with torch_threads(threads):
        return _encode_pages(model, corpus, pages, batch_size, progress, num_workers)


def _encode_pages(model, corpus, pages, batch_size, progress, num_workers) -> np.ndarray:
    _eval_mode(model)
    out = np.zeros((len(pages), model.grid * model.grid, model.dim), dtype=np.float32)
    loader = DataLoader(
        _PageBatches(model, corpus, pages, batch_size),
        batch_size=None,  # items are already batches
        shuffle=False,
        num_workers=num_workers,
    )
    device, start = _device(model), 0
    bar = tqdm(
        loader, desc="encode pages", unit="batch", disable=not (progress and sys.stderr.isatty())
    )
    for batch in bar:
        cell_text = batch["cell_text"].to(device) if "cell_text" in batch else None
        cells = model.encode_cells(
            batch["pixels"].to(device), batch["cell_tokens"].to(device), cell_text
        )
        out[start : start + len(cells)] = cells.float().cpu().numpy()
        start += len(cells)
    return out


@torch.inference_mode()
def encode_queries(model: RegionRetriever, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """float32 [N, dim]: mean of normalised token vectors (kept unnormalised: the paper's score)."""
    _eval_mode(model)
    if not texts:
        return np.zeros((0, model.dim), dtype=np.float32)
    device, chunks = _device(model), []
    traced = traced_text_encoder(model)
    for i in range(0, len(texts), batch_size):
        enc = model.tokenize_queries(texts[i : i + batch_size])
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        if traced is not None:
            vectors = model.project_query_states(traced(ids, mask), ids, mask)
        else:
            vectors = model.encode_query_tokens(ids, mask)
        chunks.append(vectors.float().cpu())
    return torch.cat(chunks).numpy()


@torch.inference_mode()
def encode_query_token_matrices(model: RegionRetriever, texts: list[str]) -> list[np.ndarray]:
    """Per text, float32 [L, dim]: its real tokens' unit vectors (no padding rows), what MaxSim
    scores (ADR 28); their mean is ``encode_queries``' vector."""
    _eval_mode(model)
    if not texts:
        return []
    device = _device(model)
    enc = model.tokenize_queries(list(texts))
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    traced = traced_text_encoder(model)
    if traced is not None:
        tokens = model.project_query_token_vectors(traced(ids, mask), ids, mask)
    else:
        tokens = model.encode_query_token_vectors(ids, mask)
    tokens, keep = tokens.float().cpu().numpy(), mask.bool().cpu().numpy()
    return [t[k] for t, k in zip(tokens, keep)]


@torch.inference_mode()
def encode_image_queries(
    model: RegionRetriever, images: list[Image.Image], batch_size: int = 32
) -> np.ndarray:
    """float32 [N, dim]: the pixel path pooled over cells, for image-to-region matching."""
    _eval_mode(model)
    if not images:
        return np.zeros((0, model.dim), dtype=np.float32)
    device, chunks = _device(model), []
    size = model.params.image_size
    for i in range(0, len(images), batch_size):
        pixels = torch.stack([image_to_pixels(img, size) for img in images[i : i + batch_size]]).to(
            device
        )
        chunks.append(model.encode_image_query(pixels).float().cpu())
    return torch.cat(chunks).numpy()
