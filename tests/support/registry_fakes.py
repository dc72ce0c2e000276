"""A stand-in RAG engine for registry tests (importable by spawned workers and a served model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from components.serving import checkpoint


@dataclass
class FakeResult:
    question: str
    k: int | None
    image_size: tuple[int, int] | None

    def to_dict(self) -> dict:
        return {
            "answer": f"answer to {self.question}",
            "page_id": "docs/a.pdf#0",
            "boxes": [[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 0.25]],
            "scores": [0.9, 0.5],
            "regions": [],
            "k": self.k,
            "image_size": self.image_size,
        }


@dataclass
class FakeEngine:
    """Stands in for RagEngine: records what it was built from and asked."""

    model_dir: Path
    index_dir: Path
    params: object
    calls: list = field(default_factory=list)

    def answer(self, question, k=None, query_image=None):
        size = None if query_image is None else query_image.size
        self.calls.append((question, k, size))
        return FakeResult(question, k, size)


def fake_factory(model_dir, index_dir, params):
    assert (Path(model_dir) / "retriever" / "model.safetensors").exists()
    assert not list(Path(model_dir).rglob("*.ckpt")), "training checkpoints must not be bundled"
    return FakeEngine(Path(model_dir), Path(index_dir), params)


class FakeRagCheckpoint(checkpoint.RagCheckpoint):
    """The real pyfunc (validation, output shaping) over the fake engine, for a served model."""

    def load_context(self, context) -> None:
        checkpoint.ENGINE_FACTORY = fake_factory
        super().load_context(context)
