"""Whether a found ``last.ckpt`` may be resumed, shared by the retriever and reader trainers.

A checkpoint that cannot be read (truncated, corrupt, or a pickle that is more than tensors and
primitives), that holds another model's weights, or that is already past ``max_steps`` is not
resumed: training starts fresh and says why (log warning, MLflow tag). Fresh rather than a
failed stage because the pipeline runs unattended (retrain cron): refusing would fail every run
until someone deletes the file, while a fresh start is always correct, only slower. The rejected
file is moved aside (``last.ckpt.rejected-<time>``), never deleted, so it can still be inspected.

``max_steps`` is deliberately not part of the checkpoint key (see the trainers): asking for more
steps continues the same run. The warmup and cosine schedule are functions of ``max_steps``, so
such a continued run is not bit-identical to a fresh run of the new length; the MLflow run says
it was resumed (``regionops.resumed_from``). A checkpoint past the asked ``max_steps`` is not
resumed: Lightning would train zero steps and export weights trained longer than asked.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


def checkpoint_problem(path: Path, expected_state: dict, max_steps: int) -> str | None:
    """Why ``path`` must not be resumed into a module whose state dict is ``expected_state``; None if it may."""
    import torch

    try:
        # tensors and primitives only: a crafted pickle cannot run code here
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse means the file is unusable
        return f"unreadable checkpoint ({type(exc).__name__}: {str(exc)[:200]})"
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("state_dict"), dict)
        or "global_step" not in state
    ):
        return "not a Lightning training checkpoint (no state_dict/global_step)"
    weights = state["state_dict"]
    if set(weights) != set(expected_state):
        missing = sorted(set(expected_state) - set(weights))[:2]
        extra = sorted(set(weights) - set(expected_state))[:2]
        return f"foreign checkpoint: its weights are not this model's (missing {missing}, unexpected {extra})"
    for name, tensor in expected_state.items():
        if tuple(getattr(weights[name], "shape", ())) != tuple(tensor.shape):
            return f"foreign checkpoint: {name} has shape {tuple(weights[name].shape)}, not {tuple(tensor.shape)}"
    step = int(state["global_step"])
    if step > max_steps:
        return f"checkpoint is at step {step}, past max_steps={max_steps}"
    return None


def resumable(last: Path, expected_state: dict, max_steps: int) -> tuple[Path | None, str | None]:
    """(``last``, None) when it may be resumed; (None, reason) after moving a rejected one aside."""
    if not last.is_file():
        return None, None
    problem = checkpoint_problem(last, expected_state, max_steps)
    if problem is None:
        return last, None
    aside = last.with_name(f"{last.name}.rejected-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(last, aside)
    log.warning(
        "not resuming from %s: %s; moved it to %s and starting fresh", last, problem, aside.name
    )
    return None, f"{problem}; moved to {aside.name}"
