"""Batched page featurizing (one MiniLM pass per batch) gives each page the features it gets alone."""

from __future__ import annotations

import numpy as np
import torch

from components.model.encode import encode_pages
from components.model.retriever import build_retriever


def test_batched_features_equal_per_page_features(tiny_params, tiny_corpus):
    assert tiny_params.model.cell_text == "contextual" and tiny_params.model.block_context > 0
    model = build_retriever(tiny_params.model).eval()
    pages = [p for p in tiny_corpus.pages if p.words][:6]
    lengths = {len(p.words) for p in pages}
    assert len(lengths) > 1  # pages of different lengths share one padded batch
    images = [tiny_corpus.load_image(p) for p in pages]
    batched = model.featurizer.many(pages, images)
    for page, image, got in zip(pages, images, batched):
        alone = model.featurizer(page, image)
        assert torch.equal(got.pixels, alone.pixels) and torch.equal(
            got.cell_tokens, alone.cell_tokens
        )
        assert got.cell_text.abs().sum() > 0
        torch.testing.assert_close(got.cell_text, alone.cell_text, atol=2e-5, rtol=1e-4)
    one_by_one = encode_pages(model, tiny_corpus, pages, batch_size=1, progress=False)
    in_batches = encode_pages(model, tiny_corpus, pages, batch_size=4, progress=False)
    np.testing.assert_allclose(in_batches, one_by_one, atol=1e-4)


def test_encoder_thread_setting_keeps_features_and_is_restored(tiny_params, tiny_corpus):
    model = build_retriever(tiny_params.model).eval()
    pages = [p for p in tiny_corpus.pages if p.words][:4]
    before = torch.get_num_threads()
    one = encode_pages(model, tiny_corpus, pages, progress=False, threads=1)
    assert torch.get_num_threads() == before  # the process's setting comes back after encoding
    two = encode_pages(model, tiny_corpus, pages, progress=False, threads=2)
    np.testing.assert_allclose(one, two, atol=1e-5)
