"""Turn a (Page, PIL image) into the cell encoder's inputs: resized pixels and per-cell word-piece ids.

Featurizing is pure and deterministic, so datasets cache its output per page, and a DataLoader
collate can stack it (``collate_pages``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from components.data.schema import Page


@dataclass(frozen=True)
class PageFeatures:
    pixels: torch.Tensor  # uint8 [3, S, S]; the model scales it (uint8 keeps caches 4x smaller)
    cell_tokens: torch.Tensor  # int64 [G*G, T]; 0 = padding; row-major cells, rows = y


def image_to_pixels(image: Image.Image, image_size: int) -> torch.Tensor:
    """RGB image -> uint8 [3, S, S] (aspect ratio is not kept: cells are a fixed G×G grid of the page)."""
    resized = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    return (
        torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
    )


class PageFeaturizer:
    def __init__(self, tokenizer, grid: int, image_size: int, max_tokens_per_cell: int):
        self.tokenizer = tokenizer
        self.grid = grid
        self.image_size = image_size
        self.max_tokens = max_tokens_per_cell

    def cell_tokens(self, page: Page) -> torch.Tensor:
        """Word pieces of the text layer, bucketed by the cell holding each word box's centre (reading order)."""
        grid, cap = self.grid, self.max_tokens
        out = torch.zeros(grid * grid, cap, dtype=torch.long)
        if not page.words:
            return out
        pieces = self.tokenizer([w.text for w in page.words], add_special_tokens=False)["input_ids"]
        fill = np.zeros(grid * grid, dtype=np.int64)
        for word, ids in zip(page.words, pieces):
            x0, y0, x1, y1 = word.box
            col = min(grid - 1, int((x0 + x1) / 2 * grid))
            row = min(grid - 1, int((y0 + y1) / 2 * grid))
            cell = row * grid + col
            for token in ids:
                if fill[cell] >= cap:
                    break  # the cell is full: later words in it are truncated (max_tokens_per_cell)
                out[cell, fill[cell]] = token
                fill[cell] += 1
        return out

    def __call__(self, page: Page, image: Image.Image) -> PageFeatures:
        return PageFeatures(
            pixels=image_to_pixels(image, self.image_size), cell_tokens=self.cell_tokens(page)
        )


def collate_pages(features: list[PageFeatures]) -> dict[str, torch.Tensor]:
    return {
        "pixels": torch.stack([f.pixels for f in features]),
        "cell_tokens": torch.stack([f.cell_tokens for f in features]),
    }
