"""The frozen MiniLM as a TorchScript-frozen graph for encoding one query at a time (ADR 15).

A served question is ~20 word pieces: MiniLM's eager forward then spends much of its time in
Python and in unfused small ops, not in the matrix products. Tracing the frozen text encoder
once and letting TorchScript freeze and optimise it (constant weights, fused linear + GELU,
prepacked oneDNN weights) gives the same hidden states to ~1e-6. Only a frozen encoder
(``finetune_text_layers: 0``) is traced: its weights never change, so the graph never goes stale.
Large page batches gain nothing (compute-bound), so page encoding keeps the eager model.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

log = logging.getLogger(__name__)

# retriever -> its traced text encoder (None: tracing failed or does not apply); weak, so it dies with the model
_TRACED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_EAGER_ONLY = [False]  # set by ``eager_only()`` (the bench times both)


@contextmanager
def eager_only() -> Iterator[None]:
    """Within the block every query runs MiniLM's eager forward (for side-by-side timing)."""
    _EAGER_ONLY[0] = True
    try:
        yield
    finally:
        _EAGER_ONLY[0] = False


class _LastHiddenState(nn.Module):
    def __init__(self, text: nn.Module):
        super().__init__()
        self.text = text

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def applies(model) -> bool:
    """Frozen text encoder, inference mode, on the CPU."""
    return (
        model.params.finetune_text_layers == 0
        and not model.training
        and next(model.text.parameters()).device.type == "cpu"
    )


def traced_text_encoder(model):
    """``(input_ids, attention_mask) -> last_hidden_state`` for ``model``'s frozen MiniLM, traced on
    first use; None when it does not apply or tracing failed (the caller then runs the eager model)."""
    if _EAGER_ONLY[0] or not applies(model):
        return None
    if model in _TRACED:
        return _TRACED[model]
    traced = None
    try:
        example = model.tokenize_queries(["which value is shown for the total"])
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about shape-dependent Python branches
            graph = torch.jit.trace(
                _LastHiddenState(model.text).eval(),
                (example["input_ids"], example["attention_mask"]),
                check_trace=False,
            )
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(graph.eval()))
            # The traced graph must give the eager states on another length and batch size.
            probe = model.tokenize_queries(
                ["a", "what is the net income of the company in the year 2019"]
            )
            eager = model.text(**probe).last_hidden_state
            if not torch.allclose(
                traced(probe["input_ids"], probe["attention_mask"]), eager, atol=1e-4
            ):
                raise RuntimeError("traced states differ from the eager model's")
    except Exception as err:  # noqa: BLE001 - any tracing failure: fall back to the eager model, never to wrong vectors
        log.warning("query encoder stays eager (tracing failed: %s)", err)
        traced = None
    _TRACED[model] = traced
    return traced
