"""MLflow tracing of the online path: one trace per question, a retriever span (candidate pages,
ranked regions with their boxes) and an answerer span (reader or text layer).

Off unless asked for: ``REGIONOPS_TRACING=1`` in the environment (read when an engine is built)
or ``RagEngine(..., tracing_on=True)``. Every span is built and written while the question is
answered, so the serving path leaves it off (scripts/experiments/trace_overhead.py measures the
cost). When off, ``span`` yields a stand-in that records nothing and imports nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

TRACING_ENV = "REGIONOPS_TRACING"


def tracing_requested() -> bool:
    return os.environ.get(TRACING_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class _NoSpan:
    """What ``span`` yields when tracing is off: the same calls, nothing recorded."""

    def set_inputs(self, inputs: Any) -> None:
        pass

    def set_outputs(self, outputs: Any) -> None:
        pass

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        pass


_NO_SPAN = _NoSpan()


@contextlib.contextmanager
def span(enabled: bool, name: str, span_type: str, inputs: Any = None) -> Iterator[Any]:
    if not enabled:
        yield _NO_SPAN
        return
    import mlflow

    with mlflow.start_span(name=name, span_type=span_type) as live:
        if inputs is not None:
            live.set_inputs(inputs)
        yield live


def region_documents(regions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Regions as MLflow retriever documents: the region's text, and where it is (page, box, score)."""
    return [
        {
            "page_content": r.get("text", ""),
            "metadata": {"page_id": r["page_id"], "box": r["box"], "score": r["score"]},
        }
        for r in regions
    ]
