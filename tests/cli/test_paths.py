"""The paths object agrees with dvc.yaml: each stage's outs and deps, and the flags its command passes,
are the ProjectPaths the CLI and the flows use (dvc.yaml must spell them literally)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer.main
import yaml

from components.paths import PROJECT, ProjectPaths

REPO = Path(__file__).resolve().parents[2]
P = ProjectPaths.from_root()

# What each stage must write and read, by the paths object.
STAGES = {
    "generate": {"outs": [P.corpus], "deps": [P.landed / "docs", P.landed / "questions.jsonl"]},
    "validate": {"outs": [P.validation], "deps": []},
    "train": {"outs": [P.model], "deps": [P.accepted]},
    "index": {"outs": [P.index], "deps": [P.accepted, P.model]},
    "train-reader": {"outs": [P.reader], "deps": [P.accepted, P.model, P.index]},
    "evaluate": {
        "outs": None,
        "deps": [P.accepted, P.model, P.index, P.reader],
    },  # outs: the test below
}


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _names(entries) -> list[Path]:
    """dvc.yaml's outs/deps/metrics entries (a string, or a one-key mapping with options) as paths."""
    out = []
    for entry in entries or []:
        name = entry if isinstance(entry, str) else next(iter(entry))
        if not name.startswith("${"):  # ${data.corpus_dir}: params decide, not the paths object
            out.append(Path(name))
    return out


def _commands(stage: dict) -> list[list[str]]:
    cmds = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
    return [shlex.split(cmd) for cmd in cmds]


def _flags(argv: list[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """(["regionops", "index", "build", "--model", "m"]) -> (("index", "build"), {"model": "m"})."""
    words = []
    rest = argv[1:]
    while rest and not rest[0].startswith("--"):
        words.append(rest.pop(0))
    flags = {rest[i][2:]: rest[i + 1] for i in range(0, len(rest), 2)}
    return tuple(words), flags


def test_every_stage_is_checked():
    assert set(_stages()) == set(STAGES)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_outs_and_deps_are_the_paths_object(name):
    stage = _stages()[name]
    if STAGES[name]["outs"] is not None:
        assert _names(stage.get("outs")) == STAGES[name]["outs"]
    data_deps = [d for d in _names(stage.get("deps")) if d.parts[0] != "components"]
    assert data_deps == STAGES[name]["deps"]


def test_evaluate_writes_only_under_eval_and_its_metric_is_the_gated_one():
    stage = _stages()["evaluate"]
    outs = _names(stage["outs"])
    assert outs and all(P.eval in out.parents for out in outs)
    assert _names(stage["metrics"]) == [P.metrics]


def _cli_option_defaults(words: tuple[str, ...]) -> dict[str, object]:
    from components.cli import app

    command = typer.main.get_command(app)
    for word in words:
        command = command.commands[word]
    return {param.name: param.default for param in command.params}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_commands_pass_the_paths_the_cli_defaults_to(name):
    """Each flag a stage passes is the paths object's folder, and the CLI's default where it has one."""
    expected = {
        P.corpus,
        P.landed,
        P.validation,
        P.model,
        P.index,
        P.reader,
        P.reader_export,
        P.eval,
    }
    for argv in _commands(_stages()[name]):
        words, flags = _flags(argv)
        assert argv[0] == "regionops"
        defaults = _cli_option_defaults(words)
        for flag, value in flags.items():
            assert Path(value) in expected, f"{name}: --{flag} {value} is not a ProjectPaths folder"
            default = defaults[flag.replace("-", "_")]
            if default is not None:
                assert Path(default) == Path(value), (
                    f"{name}: --{flag} {value} but the CLI defaults to {default}"
                )


def test_from_root_puts_every_folder_under_the_root(tmp_path):
    paths = ProjectPaths.from_root(tmp_path)
    assert (
        paths.model == tmp_path / "data/model" and paths.metrics == tmp_path / "eval/metrics.json"
    )
    assert paths.reader_export == tmp_path / "data/reader/reader"
    assert paths.accepted == tmp_path / "data/validation/accepted.json"
    assert PROJECT == ProjectPaths.from_root(".") and not PROJECT.model.is_absolute()


def test_the_landed_folder_the_flows_version_is_the_paths_object():
    from components.data.landing import LANDED_DIR

    assert Path(LANDED_DIR) == P.landed
