"""The LightningModule: one hybrid-loss step, validation loss and page R@1, AdamW with warm-up + cosine."""

from __future__ import annotations

import math

import lightning as L
import torch

from components.config import Params
from components.loss.contrastive import hybrid_loss
from components.model.late_interaction import (
    maxsim_heatmaps,
    maxsim_page_scores,
    page_score_rule,
    token_cell_scores,
)
from components.model.retriever import (
    RegionRetriever,
    build_retriever,
    cell_scores,
    mean_query_vector,
)


class RetrieverModule(L.LightningModule):
    def __init__(self, params: Params, model: RegionRetriever | None = None):
        super().__init__()
        self.params = params
        self.model = model if model is not None else build_retriever(params.model)
        # The export serves pages by the rule the global loss ranked them by (ADR 28).
        self.model.page_score = page_score_rule(params.train.global_score)
        self.late = params.train.global_score == "late_interaction"
        self._val_queries: list[torch.Tensor] = []
        self._val_gold: list[str] = []
        self._val_pages: dict[str, torch.Tensor] = {}
        self._val_tokens: list[torch.Tensor] = []  # maxsim: per val question [L, D]
        # Set by the trainer (RetrievalDataModule.fused_val): the served fusion over the val pages.
        self.fused_val = None

    def _loss(self, batch: dict[str, torch.Tensor]):
        t = self.params.train
        mask = batch["attention_mask"]
        tokens = self.model.encode_query_token_vectors(batch["input_ids"], mask)
        queries = mean_query_vector(tokens, mask)
        cells = self.model.encode_cells(
            batch["pixels"], batch["cell_tokens"], batch.get("cell_text")
        )
        scores = cell_scores(queries, cells)
        late = self.late
        per_token = token_cell_scores(tokens, cells) if late else None  # [B, P, L, N]
        page_score = maxsim_page_scores(per_token, mask) if late else None
        lexical = batch.get("lexical_cells")
        if t.fusion_aware and lexical is not None:
            # The served page score is the best cell of dense + w·lexical: a fixed bias in the
            # logits. Under MaxSim the dense map is MaxSim's heatmap (peak = MaxSim; ADR 28).
            bias = self.params.rag.lexical_weight * lexical.to(scores.dtype)
            dense = (
                maxsim_heatmaps(per_token, mask, self.params.rag.maxsim_heatmap) if late else scores
            )
            page_score = (dense + bias).max(-1).values
        out = hybrid_loss(
            scores,
            batch["targets"],
            batch["box_cells"],
            batch["has_box"],
            tau_global=t.tau_global,
            tau_local=t.tau_local,
            lambda_local=t.lambda_local,
            local_mode=t.local_loss,
            step=self.global_step,
            warmup_steps=t.pseudo_label_warmup_steps,
            pseudo_z=t.pseudo_label_z,
            local_negatives=t.local_negatives,
            page_score=page_score,
        )
        return out, queries, cells, tokens

    def training_step(self, batch, batch_idx):
        out, _, _, _ = self._loss(batch)
        n = len(batch["targets"])
        self.log("train/loss", out.total, prog_bar=True, batch_size=n)
        self.log("train/loss_global", out.global_, batch_size=n)
        self.log("train/loss_local", out.local, batch_size=n)
        self.log("train/pseudo_labelled", float(out.n_pseudo), batch_size=n)
        return out.total

    def on_validation_epoch_start(self) -> None:
        self._val_queries, self._val_gold, self._val_pages = [], [], {}
        self._val_tokens = []

    def validation_step(self, batch, batch_idx):
        out, queries, cells, tokens = self._loss(batch)
        n = len(batch["targets"])
        self.log("val/loss", out.total, prog_bar=True, batch_size=n)
        self.log("val/loss_global", out.global_, batch_size=n)
        self.log("val/loss_local", out.local, batch_size=n)
        # Keep vectors for a retrieval R@1 over every val gold page (not just the batch's pages).
        page_ids = batch["page_ids"]
        for j, pid in enumerate(page_ids):
            self._val_pages.setdefault(pid, cells[j].detach())
        self._val_queries.append(queries.detach())
        if self.late:  # each question's real token vectors
            keep = batch["attention_mask"].bool()
            self._val_tokens += [t[k].detach() for t, k in zip(tokens, keep)]
        self._val_gold += [page_ids[i] for i in batch["targets"].tolist()]

    def on_validation_epoch_end(self) -> None:
        if not self._val_queries:
            return
        ids = list(self._val_pages)
        pages = torch.stack([self._val_pages[i] for i in ids])
        queries = torch.cat(self._val_queries)
        maxsim = self.late  # val ranks pages as the export will serve them
        if maxsim:
            best = torch.stack(
                [maxsim_page_scores(token_cell_scores(t, pages)) for t in self._val_tokens]
            ).argmax(-1)
        else:
            best = cell_scores(queries, pages).max(-1).values.argmax(-1)
        hits = [ids[b] == gold for b, gold in zip(best.tolist(), self._val_gold)]
        self.log("val/page_r1", sum(hits) / len(hits), prog_bar=True)
        t = self.params.train
        select = sum(hits) / len(hits)
        if self.fused_val is not None:
            fused = self.fused_val.score(
                queries.cpu(),
                {k: v.cpu() for k, v in self._val_pages.items()},
                [t.cpu() for t in self._val_tokens] if maxsim else None,
            )
            for name, value in fused.items():
                self.log(f"val/{name}", value, prog_bar=name == "fused")
            if t.select_on == "fused":
                select = fused["fused"]
        if t.local_loss == "hybrid" and self.global_step < t.pseudo_label_warmup_steps:
            # Weights trained before pseudo-labels began are never the export (-1: below any score).
            select = -1.0
        self.log("val/select", select)

    def configure_optimizers(self):
        t = self.params.train
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in trainable if p.ndim >= 2]
        no_decay = [p for p in trainable if p.ndim < 2]  # biases, norms, embeddings vectors
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": t.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=t.lr,
        )
        warmup = max(1, int(0.1 * t.max_steps))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, t.max_steps - warmup))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        return {
            "optimizer": opt,
            "lr_scheduler": {
                "scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                "interval": "step",
            },
        }
