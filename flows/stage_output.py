"""A DVC stage's output, line by line, into the Prefect run log; its training progress as a progress artifact.

``components.versioning.repro_stage`` hands every line the stage prints to a callable; this
is that callable for Prefect. The line format of the progress records belongs to
``components.stage_progress``; here they only become a progress bar in the UI.
"""

from __future__ import annotations

import logging
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from components.stage_progress import StepProgressLine, parse_progress


def progress_key(stage: str) -> str:
    """Artifact keys take lowercase letters, digits and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in stage.lower()) + "-progress"


class StageOutputForwarder:
    """Log each line of one stage to ``logger``; mirror its ``progress`` lines in a progress artifact."""

    def __init__(self, stage: str, logger: logging.Logger | logging.LoggerAdapter):
        self.stage = stage
        self.logger = logger
        self.artifact_id: UUID | None = None
        self.last: StepProgressLine | None = None
        self._artifact_broken = False

    def __call__(self, line: str) -> None:
        self.logger.info("[%s] %s", self.stage, line)
        progress = parse_progress(line)
        if progress is not None:
            self.last = progress
            self._show(progress)

    def _show(self, progress: StepProgressLine) -> None:
        if self._artifact_broken:
            return
        losses = ", ".join(f"{k} {v:.4g}" for k, v in sorted(progress.values.items()))
        description = f"{self.stage}: step {progress.step}/{progress.max_steps}" + (
            f" ({losses})" if losses else ""
        )
        try:
            if self.artifact_id is None:
                self.artifact_id = create_progress_artifact(
                    progress.percent, key=progress_key(self.stage), description=description
                )
            else:
                update_progress_artifact(
                    self.artifact_id, progress.percent, description=description
                )
        except Exception as exc:  # noqa: BLE001 - the UI bar is a view: a failing API call must not stop training
            self._artifact_broken = True
            self.logger.warning(
                "progress artifact for %s not updated any more: %s", self.stage, exc
            )
