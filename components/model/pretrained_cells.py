"""Cells and query tokens that live in the pretrained text encoder's space from step 0 (ADR 23).

``model.space=pretrained``: a cell's vector is normalize(its pooled contextual MiniLM states,
already mixed with its layout block's by the featurizer, + a learned residual), a query token's
vector is normalize(its MiniLM state + a learned residual). Both residuals start at exactly zero,
so an untrained model scores pages as MiniLM does: with mean pooling (all-MiniLM-L6-v2), the mean
query vector against a block-pooled cell is, up to the query's scale, the cosine ``dense_blocks``
ranks by. Training can only move away from that point, and the export keeps the best val check.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.config import ModelParams


def _zero(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def cell_transformer(p: ModelParams) -> nn.Module:
    """The small pre-norm transformer over a page's G*G cells that both cell encoders use
    (``model.layers`` deep; none when 0)."""
    if not p.layers:
        return nn.Identity()
    layer = nn.TransformerEncoderLayer(
        p.hidden, p.heads, dim_feedforward=2 * p.hidden, dropout=0.1, batch_first=True,
        norm_first=True,
    )  # fmt: skip
    return nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)


class PretrainedCellEncoder(nn.Module):
    """Pooled MiniLM states of each cell + a zero-initialised residual from pixels, position and a
    small transformer over the page's cells -> [B, G*G, width] unit vectors (zero for empty cells
    at step 0)."""

    def __init__(self, p: ModelParams, text_width: int):
        super().__init__()
        patch = p.image_size // p.grid
        self.patch_embed = nn.Conv2d(3, p.hidden, kernel_size=patch, stride=patch)
        self.text_proj = nn.Linear(text_width, p.hidden)
        self.row_embed = nn.Parameter(torch.randn(p.grid, p.hidden) * 0.02)
        self.col_embed = nn.Parameter(torch.randn(p.grid, p.hidden) * 0.02)
        self.input_dropout = nn.Dropout(p.input_dropout)
        self.layers = cell_transformer(p)
        self.norm = nn.LayerNorm(p.hidden)
        # Zero: the residual adds nothing until training moves it (step 0 == pretrained space).
        self.residual = _zero(nn.Linear(p.hidden, text_width))

    def forward(self, pixels: torch.Tensor, cell_text: torch.Tensor) -> torch.Tensor:
        """pixels uint8 [B,3,S,S], cell_text [B,G*G,width] (zeros for empty cells) -> unit vectors."""
        x = pixels.to(self.patch_embed.weight.dtype) / 127.5 - 1.0
        visual = self.patch_embed(x).flatten(2).transpose(1, 2)
        grid = self.row_embed.shape[0]
        pos = (self.row_embed[:, None, :] + self.col_embed[None, :, :]).reshape(grid * grid, -1)
        h = self.layers(self.input_dropout(visual + self.text_proj(cell_text) + pos))
        return F.normalize(cell_text + self.residual(self.norm(h)), dim=-1)


class PretrainedQueryTokens(nn.Module):
    """MiniLM token states [B, L, width] -> unit vectors normalize(state + zero-initialised linear
    residual), padding rows zero."""

    def __init__(self, width: int):
        super().__init__()
        self.residual = _zero(nn.Linear(width, width))

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = F.normalize(states + self.residual(states), dim=-1)
        return tokens * attention_mask.unsqueeze(-1).to(tokens.dtype)
