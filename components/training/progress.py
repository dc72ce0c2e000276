"""Step progress as one parseable log line, so an orchestrator reading a stage's output can show it.

A training stage runs as a child process (``dvc repro``); all its parent sees is text. The
``StepProgress`` callback logs ``progress <stage> step=<n>/<max> <name>=<value> ...`` through
the standard ``logging`` module every ``every_n_steps`` optimizer steps (and at the last one);
``components.stage_progress`` owns that format and parses it back (without importing Lightning).
"""

from __future__ import annotations

import logging

from lightning.pytorch.callbacks import Callback

from components.stage_progress import format_progress

log = logging.getLogger("regionops.progress")


class StepProgress(Callback):
    """Log ``step/max_steps`` and the logged losses every ``every_n_steps`` steps and at the end."""

    def __init__(
        self, stage: str, every_n_steps: int, prefixes: tuple[str, ...] = ("train/", "val/")
    ):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.stage = stage
        self.every_n_steps = every_n_steps
        self.prefixes = prefixes
        self._last_logged = -1

    def _values(self, trainer) -> dict[str, float]:
        values = {}
        for name, value in trainer.callback_metrics.items():
            if name.startswith(self.prefixes) and not name.endswith("_epoch"):
                try:
                    values[name.removesuffix("_step")] = float(value)
                except (TypeError, ValueError):
                    continue
        return values

    def _log(self, trainer) -> None:
        step = int(trainer.global_step)
        if step == self._last_logged:
            return
        self._last_logged = step
        log.info(format_progress(self.stage, step, int(trainer.max_steps), self._values(trainer)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(trainer.global_step)
        if step % self.every_n_steps == 0 or step >= trainer.max_steps:
            self._log(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._log(trainer)  # the final step, when max_steps is not a multiple of the cadence
