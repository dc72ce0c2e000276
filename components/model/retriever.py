"""The region retriever (DESIGN §5): a cell encoder for pages and a MiniLM query encoder.

Scores follow RegionRAG: cell score = <mean of the L2-normalised query token vectors, cell vector>,
page score = max over the page's cells.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from components.config import ModelParams
from components.model.featurize import PageFeaturizer
from components.model.text_encoder import TextEncoderInfo, load_text_encoder, resolve_text_encoder


class CellEncoder(nn.Module):
    """Page pixels + text-layer word pieces + 2-D position -> one L2-normalised vector per cell.

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
        layer = nn.TransformerEncoderLayer(
            p.hidden, p.heads, dim_feedforward=2 * p.hidden, dropout=0.1, batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.layers = (
            nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
            if p.layers
            else nn.Identity()
        )
        self.norm = nn.LayerNorm(p.hidden)
        self.proj = nn.Linear(p.hidden, p.dim)

    def visual(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,S,S] -> [B, G*G, hidden], cells row-major like ``cell_tokens``."""
        x = pixels.to(self.patch_embed.weight.dtype) / 127.5 - 1.0
        return self.patch_embed(x).flatten(2).transpose(1, 2)

    def forward(
        self, pixels: torch.Tensor, cell_tokens: torch.Tensor, word_table: torch.Tensor
    ) -> torch.Tensor:
        """pixels [B,3,S,S], cell_tokens [B,G*G,T], word_table [V,E] -> [B,G*G,dim] unit vectors."""
        b, n, t = cell_tokens.shape
        # Mean of the pretrained word-piece embeddings per cell; embedding_bag skips padding id 0.
        flat = cell_tokens.reshape(b * n, t)
        text = F.embedding_bag(flat, word_table, mode="mean", padding_idx=0).reshape(b, n, -1)
        has_text = (cell_tokens != 0).any(-1, keepdim=True)
        text = torch.where(has_text, self.text_proj(text), self.no_text.expand(b, n, -1))
        pos = (self.row_embed[:, None, :] + self.col_embed[None, :, :]).reshape(n, -1)
        h = self.layers(self.visual(pixels) + text + pos)
        return F.normalize(self.proj(self.norm(h)), dim=-1)


class RegionRetriever(nn.Module):
    def __init__(
        self,
        p: ModelParams,
        text_model: nn.Module,
        tokenizer,
        text_info: TextEncoderInfo,
        vision_tower: nn.Module | None = None,
    ):
        super().__init__()
        self.params = p
        self.text_info = text_info
        self.tokenizer = tokenizer
        self.text = text_model
        width = text_model.config.hidden_size
        self.query_proj = nn.Linear(width, p.dim)
        if p.backbone == "hf_vision":
            from components.model.hf_backbone import HFVisionCellEncoder

            if vision_tower is None:
                raise ValueError("model.backbone=hf_vision needs a vision tower")
            self.cells = HFVisionCellEncoder(p, width, vision_tower)
        else:
            self.cells = CellEncoder(p, width)
        self.featurizer = PageFeaturizer(tokenizer, p.grid, p.image_size, p.max_tokens_per_cell)
        self._fingerprint: str | None = None
        self._freeze_text(p.finetune_text_layers)

    # -- identity -------------------------------------------------------------------------
    @property
    def grid(self) -> int:
        return self.params.grid

    @property
    def dim(self) -> int:
        return self.params.dim

    @property
    def fingerprint(self) -> str:
        """sha256 of the exported weights file; for an unexported model, of the current weights."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name, tensor in sorted(self.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            return digest.hexdigest()
        return self._fingerprint

    def _freeze_text(self, trainable_layers: int) -> None:
        # Only the last N MiniLM layers learn; the embedding table stays pretrained (cells share it).
        for param in self.text.parameters():
            param.requires_grad = False
        layers = self.text.encoder.layer
        for layer in list(layers)[len(layers) - trainable_layers :] if trainable_layers else []:
            for param in layer.parameters():
                param.requires_grad = True

    def train(self, mode: bool = True) -> RegionRetriever:
        # Frozen MiniLM layers stay in eval mode (no dropout noise on features nobody trains).
        super().train(mode)
        if mode:
            self.text.eval()
            for layer in self.text.encoder.layer:
                if any(p.requires_grad for p in layer.parameters()):
                    layer.train()
        return self

    @property
    def word_table(self) -> torch.Tensor:
        return self.text.get_input_embeddings().weight

    # -- encoders -------------------------------------------------------------------------
    def tokenize_queries(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.params.max_query_tokens,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def encode_query_tokens(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """[B, L] ids -> [B, dim]: mean of the L2-normalised projected token states (not renormalised)."""
        frozen = self.params.finetune_text_layers == 0
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            states = self.text(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        tokens = F.normalize(self.query_proj(states), dim=-1)
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def encode_cells(self, pixels: torch.Tensor, cell_tokens: torch.Tensor) -> torch.Tensor:
        return self.cells(pixels, cell_tokens, self.word_table)

    def encode_image_query(self, pixels: torch.Tensor) -> torch.Tensor:
        """The pixel path alone (no text layer), cells pooled by mean -> [B, dim]."""
        b, n = pixels.shape[0], self.grid * self.grid
        empty = torch.zeros(b, n, 1, dtype=torch.long, device=pixels.device)
        return self.encode_cells(pixels, empty).mean(1)


def cell_scores(queries: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """queries [B, D] x cells [P, N, D] -> [B, P, N] dot products."""
    return torch.einsum("bd,pnd->bpn", queries, cells)


def page_scores(cell_score: torch.Tensor) -> torch.Tensor:
    """Page score = the best cell's score: [..., N] -> [...]."""
    return cell_score.max(-1).values


def build_retriever(p: ModelParams) -> RegionRetriever:
    """A fresh retriever: verified pretrained MiniLM + randomly initialised cell encoder and projections."""
    info = resolve_text_encoder(p)
    text_model, tokenizer = load_text_encoder(info.path)
    tower = None
    if p.backbone == "hf_vision":
        from components.model.hf_backbone import load_vision_tower

        tower = load_vision_tower(p.vision_model)
    return RegionRetriever(p, text_model, tokenizer, info, tower)
