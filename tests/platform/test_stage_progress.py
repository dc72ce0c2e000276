"""Training progress as log lines: the Lightning callback writes them, the stage's parent parses them."""

from __future__ import annotations

import logging

import pytest

from components.stage_progress import format_progress, parse_progress


def test_progress_line_round_trips_with_a_log_prefix():
    line = "2026-12-06 20:00:00,000 INFO regionops.progress: " + format_progress(
        "train-reader", 40, 300, {"train/loss": 1.23456789, "val/page_r1": 0.5}
    )
    parsed = parse_progress(line)
    assert parsed is not None
    assert (parsed.stage, parsed.step, parsed.max_steps) == ("train-reader", 40, 300)
    assert parsed.values == {"train/loss": pytest.approx(1.23457), "val/page_r1": 0.5}
    assert parsed.percent == pytest.approx(100 * 40 / 300)


def test_lines_that_are_not_progress_are_not_parsed():
    assert parse_progress("Epoch 0: 50%|#####     | 5/10 [00:01<00:01]") is None
    assert parse_progress("progress of the import: 3 files") is None


def test_non_finite_losses_are_left_out_of_the_line():
    assert (
        format_progress("train", 1, 2, {"train/loss": float("nan"), "x": 1.0})
        == "progress train step=1/2 x=1"
    )


def test_callback_logs_every_n_steps_and_the_last_step(caplog):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from components.training.progress import StepProgress

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            (x,) = batch
            loss = self.layer(x).pow(2).mean()
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2)
    trainer = L.Trainer(
        max_steps=5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepProgress("train", every_n_steps=2)],
    )
    with caplog.at_level(logging.INFO, logger="regionops.progress"):
        trainer.fit(Tiny(), data)
    parsed = [
        parse_progress(r.getMessage()) for r in caplog.records if r.name == "regionops.progress"
    ]
    assert [(p.step, p.max_steps) for p in parsed] == [(2, 5), (4, 5), (5, 5)]
    assert all("train/loss" in p.values for p in parsed)
