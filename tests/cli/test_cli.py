"""The regionops CLI: help everywhere, config errors that name the key, results alone on stdout,
missing inputs named with the command that makes them."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from components.cli import app
from tests.conftest import REPO, TINY_OVERRIDES

runner = CliRunner()


def _commands(typer_app, prefix=()):
    import typer.main

    group = typer.main.get_command(typer_app)
    stack = [(prefix, group)]
    while stack:
        path, cmd = stack.pop()
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append((path + (name,), sub))


@pytest.mark.parametrize("path", sorted(_commands(app)), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_bad_override_fails_with_the_key_named():
    result = runner.invoke(app, ["generate", "--set", "data.n_dcos=3"])
    assert result.exit_code == 2
    assert "data.n_dcos" in result.output


def test_ablate_retriever_rejects_an_unknown_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONOPS_HOME", str(tmp_path / "home"))
    result = runner.invoke(
        app,
        ["ablate", "retriever", "--variants", "global_only,hybird", "--out", str(tmp_path / "out")],
    )
    assert result.exit_code == 2
    assert "hybird" in result.output and "global_labelled_pseudo_local" in result.output
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


# ------------------------------------------------------------------ stdout is for results only


def _cli(args: list[str], cwd, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "REGIONOPS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "components.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_library_prints_and_child_processes_go_to_stderr_results_to_stdout(tmp_path):
    """A command's stray output (print, a child process writing to fd 1) must not corrupt its JSON."""
    script = tmp_path / "noisy.py"
    script.write_text(
        "import subprocess, sys, typer\n"
        "from components.cli import common as cli\n"
        "app = typer.Typer()\n"
        "@app.command()\n"
        "def noisy() -> None:\n"
        "    print('library chatter')\n"
        "    subprocess.run(['echo', 'child chatter'], check=True)\n"
        "    cli.emit({'answer': 42})\n"
        "app.registered_commands[0].callback = cli.results_on_stdout(app.registered_commands[0].callback)\n"
        "app()\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"answer": 42}
    assert "library chatter" in proc.stderr and "child chatter" in proc.stderr


def test_missing_model_names_the_file_and_the_command_that_makes_it(tmp_path):
    proc = _cli(["evaluate", "--params", str(REPO / "params.yaml")], tmp_path, tmp_path / "home")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "data/model/retriever/config.json" in proc.stderr and "regionops train" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_index_names_the_file_and_the_command_that_makes_it(tmp_path):
    proc = _cli(["index", "stats", "--index", "data/index"], tmp_path, tmp_path / "home")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "data/index/CURRENT" in proc.stderr and "regionops index build" in proc.stderr


def test_missing_corpus_names_the_command_that_makes_it(tmp_path):
    proc = _cli(
        [
            "train",
            "--params",
            str(REPO / "params.yaml"),
            "--set",
            f"data.corpus_dir={tmp_path}/nowhere",
        ],
        tmp_path,
        tmp_path / "home",
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "pages.jsonl not found" in proc.stderr and "regionops generate" in proc.stderr


def test_import_help_cites_the_data_contract():
    result = runner.invoke(app, ["import", "--help"])
    assert result.exit_code == 0 and "docs/data-contract.md" in result.output
    assert (REPO / "docs" / "data-contract.md").is_file()


@pytest.mark.slow
def test_evaluate_stdout_is_json_that_jq_can_read(
    tiny_params, tiny_corpus, tmp_path, regionops_home
):
    """`regionops evaluate | jq` used to get nothing: the JSON went to stderr with the logs."""
    from components.index.build import build_index
    from components.model.io import save_retriever
    from components.model.retriever import build_retriever

    model_dir, index_dir = tmp_path / "model", tmp_path / "index"
    save_retriever(
        build_retriever(tiny_params.model), model_dir / "retriever"
    )  # untrained is enough here
    build_index(tiny_params, tiny_corpus, model_dir, index_dir)
    overrides = [
        a for o in TINY_OVERRIDES + [f"data.corpus_dir={tiny_corpus.root}"] for a in ("--set", o)
    ]
    proc = _cli(
        [
            "evaluate",
            "--model",
            str(model_dir),
            "--index",
            str(index_dir),
            "--out",
            str(tmp_path / "eval"),
            "--params",
            str(REPO / "params.yaml"),
            *overrides,
        ],
        tmp_path,
        regionops_home,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert set(result["systems"]) >= {"regionops", "bm25_blocks"} and result["n_questions"] > 0
