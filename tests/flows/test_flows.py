"""Flow structure: the stage flows cover dvc.yaml exactly, in its order; flows hold no ML code."""

import ast
from pathlib import Path

from components.versioning import stage_names

REPO = Path(__file__).resolve().parents[2]


def _imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_stage_flows_cover_dvc_yaml_in_order():
    from flows.stages import EVALUATE_STAGES, PREPARE_STAGES, TRAIN_STAGES

    assert list(PREPARE_STAGES + TRAIN_STAGES + EVALUATE_STAGES) == stage_names(REPO)


def test_flows_import_no_ml_libraries():
    banned = {"torch", "lightning", "faiss", "transformers", "numpy"}
    for path in (REPO / "flows").glob("*.py"):
        assert not _imported_packages(path) & banned, f"{path.name}: flows orchestrate only"


def test_components_never_import_prefect():
    for path in (REPO / "components").rglob("*.py"):
        assert "prefect" not in _imported_packages(path), f"{path} imports prefect"
