"""The float16 and binary cell scores equal the plain decoded dot products (ADR 16)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.index.float16_scores import float16_scores
from components.index.storage_modes.binary import binary_scores


def test_float16_scores_equal_the_widened_dot_product():
    rng = np.random.default_rng(0)
    cells = rng.standard_normal((5, 300, 24)).astype(np.float16)  # 1500 rows: more than one block
    q = rng.standard_normal(24).astype(np.float32)
    got = float16_scores(cells, q)
    assert got.shape == (5, 300) and got.dtype == np.float32
    np.testing.assert_allclose(got, cells.astype(np.float32) @ q, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError):
        float16_scores(cells.astype(np.float32), q)
    with pytest.raises(ValueError, match="dims"):
        float16_scores(cells, q[:10])


@pytest.mark.parametrize("dim", [128, 37])
def test_binary_scores_equal_the_unpacked_signs(dim):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((4, 64, dim))
    packed = np.packbits(vectors > 0, axis=-1)  # 37 components: the last byte has 3 padding bits
    q = rng.standard_normal(dim).astype(np.float32)
    signs = np.unpackbits(packed, axis=-1, count=dim).astype(np.float32) * 2.0 - 1.0
    got = binary_scores(packed, q)
    assert got.shape == (4, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, signs @ q / math.sqrt(dim), atol=1e-5)
