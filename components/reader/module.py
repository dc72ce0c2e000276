"""The reader's LightningModule: span cross-entropy, val loss and val ANLS/EM, AdamW with warm-up + linear decay."""

from __future__ import annotations

import lightning as L
import torch

from components.config import Params
from components.reader.model import SpanReader, decode
from components.text import anls, exact_match


class ReaderModule(L.LightningModule):
    def __init__(
        self, params: Params, reader: SpanReader, answers: dict[int, list[str]] | None = None
    ):
        super().__init__()
        self.params, self.reader = params, reader
        self._val: list[tuple[float, float]] = []
        self.val_answers = answers or {}

    @staticmethod
    def _tensors(batch):
        return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def training_step(self, batch, batch_idx):
        loss = self.reader.loss(self._tensors(batch))
        self.log("reader/train_loss", loss, prog_bar=True, batch_size=len(batch["start"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch, batch_idx):
        tensors = self._tensors(batch)
        start, end = self.reader(tensors)
        loss = self.reader.loss(tensors)
        self.log("reader/val_loss", loss, prog_bar=True, batch_size=len(batch["start"]))
        answers = decode(start, end, tensors, batch["encoded"], self.params.reader.max_answer_words)
        first = batch_idx * self.params.reader.batch_size
        for j, a in enumerate(answers):
            gold = self.val_answers.get(first + j)
            if gold:
                self._val.append((anls(a.answer, gold), exact_match(a.answer, gold)))

    def on_validation_epoch_end(self) -> None:
        if self._val:
            self.log(
                "reader/val_anls", sum(a for a, _ in self._val) / len(self._val), prog_bar=True
            )
            self.log("reader/val_em", sum(e for _, e in self._val) / len(self._val))

    def configure_optimizers(self):
        p = self.params.reader
        trainable = [x for x in self.reader.parameters() if x.requires_grad]
        decay = [x for x in trainable if x.ndim >= 2]
        no_decay = [x for x in trainable if x.ndim < 2]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": p.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=p.lr,
        )
        warmup = max(1, int(0.1 * p.max_steps))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.05, 1.0 - (step - warmup) / max(1, p.max_steps - warmup))

        return {
            "optimizer": opt,
            "lr_scheduler": {
                "scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                "interval": "step",
            },
        }
