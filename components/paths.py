"""Where the pipeline's artifacts live in a project: one typed object for the CLI, the flows and
the components that read a project's outputs.

dvc.yaml spells the same paths literally (DVC needs them there); tests/test_paths.py checks that
every stage's ``outs``, ``deps`` and command flags agree with this object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProjectPaths:
    """The artifact folders of one project, each under ``root``."""

    root: Path
    corpus: Path  # the synthetic corpus `generate` writes (stages read params' data.corpus_dir)
    imports: Path  # datasets `import` writes, one folder per collection name
    validation: Path  # `validate`: accepted.json and the quarantine
    model: Path  # `train`: the exported retriever
    index: Path  # `index build`: the region index
    reader: Path  # `train-reader`: the reader stage's folder (the export is reader/reader)
    eval: Path  # `evaluate`: metrics.json, report.md, plots, highlights
    reports: Path  # bench and ablation tables
    landing: Path  # where users drop documents
    landed: Path  # the DVC-tracked documents taken in from the landing folder

    @classmethod
    def from_root(cls, root: Path | str = ".") -> ProjectPaths:
        """The layout under ``root`` (default ``.``: paths stay relative, as the CLI shows them)."""
        root = Path(root)
        return cls(
            root=root,
            corpus=root / "data/corpus",
            imports=root / "data/imports",
            validation=root / "data/validation",
            model=root / "data/model",
            index=root / "data/index",
            reader=root / "data/reader",
            eval=root / "eval",
            reports=root / "reports",
            landing=root / "landing",
            landed=root / "landed",
        )

    @property
    def accepted(self) -> Path:
        """The records validation accepted (the training/index/evaluate stages read only these)."""
        return self.validation / "accepted.json"

    @property
    def reader_export(self) -> Path:
        """The exported reader inside the reader stage's folder."""
        return self.reader / "reader"

    @property
    def metrics(self) -> Path:
        """The candidate's metrics.json (the DVC metric the gate checks against its evaluation run)."""
        return self.eval / "metrics.json"

    def collection(self, name: str) -> Path:
        """The folder ``import --name NAME`` writes (NAME checked as a slug by the importer)."""
        return self.imports / name


PROJECT = ProjectPaths.from_root()  # the current project, relative: the CLI's defaults
