"""The default cell encoder (pixels + text layer + position -> cell vectors), in its own module so
the retriever and the second backbone (``hf_backbone``, which subclasses it) both import it without
importing each other."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.config import ModelParams
from components.model.pretrained_cells import cell_transformer


class CellEncoder(nn.Module):
    """Page pixels + text-layer text features + 2-D position -> one L2-normalised vector per cell.

    The text feature is the cell's pooled contextual MiniLM states (``cell_text``) or, without
    them, the mean of its words' pretrained word-piece embeddings.

    Subclasses change only ``visual`` (how pixels become one feature per cell).
    """

    def __init__(self, p: ModelParams, text_width: int):
        super().__init__()
        self.grid = p.grid
        patch = p.image_size // p.grid
        self.patch_embed = nn.Conv2d(3, p.hidden, kernel_size=patch, stride=patch)
        self.text_proj = nn.Linear(text_width, p.hidden)
        # What an empty cell contributes instead of text.
        self.no_text = nn.Parameter(torch.zeros(p.hidden))
        self.row_embed = nn.Parameter(torch.randn(p.grid, p.hidden) * 0.02)
        self.col_embed = nn.Parameter(torch.randn(p.grid, p.hidden) * 0.02)
        # Regularises against memorising training pages' exact inputs (held-out templates at test).
        self.input_dropout = nn.Dropout(p.input_dropout)
        self.layers = cell_transformer(p)
        self.norm = nn.LayerNorm(p.hidden)
        self.proj = nn.Linear(p.hidden, p.dim)

    def visual(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,S,S] -> [B, G*G, hidden], cells row-major like ``cell_tokens``."""
        x = pixels.to(self.patch_embed.weight.dtype) / 127.5 - 1.0
        return self.patch_embed(x).flatten(2).transpose(1, 2)

    def forward(
        self,
        pixels: torch.Tensor,
        cell_tokens: torch.Tensor,
        word_table: torch.Tensor,
        lexical: nn.Module | None = None,
        cell_text: torch.Tensor | None = None,
        context: nn.Module | None = None,
    ) -> torch.Tensor:
        """pixels [B,3,S,S], cell_tokens [B,G*G,T], word_table [V,E], cell_text [B,G*G,E] or None
        -> [B,G*G,dim] unit vectors. ``lexical`` / ``context``: the retriever's ``LexicalSkip``s."""
        b, n, t = cell_tokens.shape
        # Mean of the pretrained word-piece embeddings per cell; embedding_bag skips padding id 0.
        flat = cell_tokens.reshape(b * n, t)
        words = F.embedding_bag(flat, word_table, mode="mean", padding_idx=0).reshape(b, n, -1)
        has_text = (cell_tokens != 0).any(-1, keepdim=True)
        features = words if cell_text is None else cell_text.to(words.dtype)
        if cell_text is not None:  # block context also fills the empty cells of a layout block
            has_text = has_text | (cell_text != 0).any(-1, keepdim=True)
        text = torch.where(has_text, self.text_proj(features), self.no_text.expand(b, n, -1))
        pos = (self.row_embed[:, None, :] + self.col_embed[None, :, :]).reshape(n, -1)
        h = self.layers(self.input_dropout(self.visual(pixels) + text + pos))
        out = F.normalize(self.proj(self.norm(h)), dim=-1)
        if lexical is not None:
            out = lexical(out, words, has_text)
        if context is not None and cell_text is not None:
            out = context(out, features, has_text)
        return F.normalize(out, dim=-1)
