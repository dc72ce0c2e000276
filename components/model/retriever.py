"""The region retriever (docs/design.md §5): a cell encoder for pages and a MiniLM query encoder.

Scores follow RegionRAG: cell score = <mean of the L2-normalised query token vectors, cell vector>,
page score = max over the page's cells.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from components.config import ModelParams
from components.model.cell_encoder import CellEncoder
from components.model.featurize import PageFeaturizer
from components.model.late_interaction import (
    PageScoreRule,
    maxsim_page_scores,
    token_cell_scores,
)
from components.model.pretrained_cells import (
    PretrainedCellEncoder,
    PretrainedQueryTokens,
)
from components.model.text_encoder import TextEncoderInfo, load_text_encoder, resolve_text_encoder


class LexicalSkip(nn.Module):
    """A shared projection of the pretrained word-piece embeddings, added on both sides.

    Query tokens and cell texts pass through the same matrix, so from step 0 a cell scores high
    when it holds the query's word pieces (rare names especially): an inductive bias for lexical
    evidence (docs/design.md §5 allows it), which the learned paths then refine. ``model.lexical_skip``.
    """

    def __init__(self, text_width: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(text_width, dim, bias=False)
        # Orthogonal rows: a random projection that keeps the pretrained space's inner products
        # roughly (Johnson-Lindenstrauss), so shared inputs already score by similarity at step 0.
        nn.init.orthogonal_(self.proj.weight)
        self.gain = nn.Parameter(torch.ones(()))

    def forward(
        self, learned: torch.Tensor, embeddings: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        lexical = F.normalize(self.proj(embeddings), dim=-1) * present.to(learned.dtype)
        return learned + self.gain * lexical


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
        contextual = p.cell_text == "contextual"
        self.pretrained = p.space == "pretrained"
        if self.pretrained:
            if p.backbone != "cells" or not contextual:
                raise ValueError(
                    "model.space=pretrained needs model.backbone=cells and model.cell_text=contextual"
                )
            if p.dim != width:
                raise ValueError(
                    f"model.space=pretrained: model.dim ({p.dim}) must equal the text "
                    f"encoder's width ({width})"
                )
            # MiniLM's own space plus zero-initialised residuals (ADR 23); the skips are moot there.
            self.query_proj = PretrainedQueryTokens(width)
            self.lexical = self.context = None
        else:
            self.query_proj = nn.Linear(width, p.dim)
            self.lexical = LexicalSkip(width, p.dim) if p.lexical_skip else None
            # The same skip over contextual states: query tokens and cells start in MiniLM's space.
            self.context = LexicalSkip(width, p.dim) if contextual and p.context_skip else None
        if self.pretrained:
            self.cells = PretrainedCellEncoder(p, width)
        elif p.backbone == "hf_vision":
            from components.model.hf_backbone import HFVisionCellEncoder

            if vision_tower is None:
                raise ValueError("model.backbone=hf_vision needs a vision tower")
            self.cells = HFVisionCellEncoder(p, width, vision_tower)
        else:
            self.cells = CellEncoder(p, width)
        self.featurizer = PageFeaturizer(
            tokenizer, p.grid, p.image_size, p.max_tokens_per_cell,
            text_model=text_model if contextual else None, chunk_tokens=p.context_chunk_tokens,
            block_context=p.block_context, heading_context=p.heading_context,
            context_unit=p.context_unit,
        )  # fmt: skip
        self._fingerprint: str | None = None
        # How a page scores against a query when served: the rule training ranked pages by
        # (train.global_score; the export records it, ADR 28).
        self.page_score: PageScoreRule = "max_cell"
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
        tokens = self.encode_query_token_vectors(input_ids, attention_mask)
        return mean_query_vector(tokens, attention_mask)

    def encode_query_token_vectors(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """[B, L] ids -> [B, L, dim]: each token's L2-normalised vector, padding rows zero.

        Their masked mean is ``encode_query_tokens``; late-interaction training scores them one by one.
        """
        frozen = self.params.finetune_text_layers == 0
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            states = self.text(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.project_query_token_vectors(states, input_ids, attention_mask)

    def project_query_states(
        self, states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """MiniLM's token states [B, L, width] of a query -> [B, dim] (the part after the text encoder)."""
        tokens = self.project_query_token_vectors(states, input_ids, attention_mask)
        return mean_query_vector(tokens, attention_mask)

    def project_query_token_vectors(
        self, states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """MiniLM's token states [B, L, width] -> [B, L, dim] unit vectors, padding rows zero."""
        if self.pretrained:
            return self.query_proj(states, attention_mask)
        tokens = F.normalize(self.query_proj(states), dim=-1)
        if self.lexical is not None:
            embeddings = F.embedding(input_ids, self.word_table)
            tokens = self.lexical(tokens, embeddings, attention_mask.unsqueeze(-1).bool())
        if self.context is not None:
            tokens = self.context(tokens, states, attention_mask.unsqueeze(-1).bool())
        tokens = F.normalize(tokens, dim=-1)
        return tokens * attention_mask.unsqueeze(-1).to(tokens.dtype)

    @property
    def contextual(self) -> bool:
        return self.params.cell_text == "contextual"

    def encode_cells(
        self, pixels: torch.Tensor, cell_tokens: torch.Tensor, cell_text: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cell vectors; ``cell_text`` (from the featurizer) is required when cell_text=contextual."""
        if self.contextual and cell_text is None:
            raise ValueError(
                "model.cell_text=contextual: encode_cells needs the featurizer's cell_text"
            )
        if not self.contextual:
            cell_text = None
        if self.pretrained:
            return self.cells(pixels, cell_text)
        return self.cells(
            pixels, cell_tokens, self.word_table, self.lexical, cell_text, self.context
        )

    def encode_image_query(self, pixels: torch.Tensor) -> torch.Tensor:
        """The pixel path alone (no text layer), cells pooled by mean -> [B, dim]."""
        b, n = pixels.shape[0], self.grid * self.grid
        empty = torch.zeros(b, n, 1, dtype=torch.long, device=pixels.device)
        no_text = (
            torch.zeros(b, n, self.text.config.hidden_size, device=pixels.device)
            if self.contextual
            else None
        )
        return self.encode_cells(pixels, empty, no_text).mean(1)


def mean_query_vector(tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L, D] token vectors (padding rows zero), mask [B, L] -> [B, D] their mean over real tokens."""
    return tokens.sum(1) / attention_mask.sum(1, keepdim=True).to(tokens.dtype).clamp_min(1.0)


def cell_scores(queries: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """queries [B, D] x cells [P, N, D] -> [B, P, N] dot products."""
    return torch.einsum("bd,pnd->bpn", queries, cells)


def page_scores(cell_score: torch.Tensor) -> torch.Tensor:
    """Page score = the best cell's score: [..., N] -> [...]."""
    return cell_score.max(-1).values


def late_interaction_page_scores(
    tokens: torch.Tensor, attention_mask: torch.Tensor, cells: torch.Tensor
) -> torch.Tensor:
    """tokens [B, L, D] (padding rows zero), mask [B, L], cells [P, N, D] -> [B, P].

    ColBERT's MaxSim: each query token takes its best cell, the page scores their mean. Different
    tokens may settle on different cells (a name on the title, a figure in a table), whereas
    ``page_scores`` asks one cell to carry the whole query. The index serves the same rule
    (components.model.late_interaction; ADR 28).
    """
    return maxsim_page_scores(token_cell_scores(tokens, cells), attention_mask)


def build_retriever(p: ModelParams) -> RegionRetriever:
    """A fresh retriever: verified pretrained MiniLM + randomly initialised cell encoder and projections."""
    info = resolve_text_encoder(p)
    text_model, tokenizer = load_text_encoder(info.path)
    tower = None
    if p.backbone == "hf_vision":
        from components.model.hf_backbone import load_vision_tower

        tower = load_vision_tower(p.vision_model)
    return RegionRetriever(p, text_model, tokenizer, info, tower)
