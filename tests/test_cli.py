"""The regionops CLI: help everywhere, config errors that name the key."""

import pytest
from typer.testing import CliRunner

from components.cli import app

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
    result = runner.invoke(app, ["ablate", "retriever", "--variants", "global_only,hybird",
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "hybird" in result.output and "global_labelled_pseudo_local" in result.output
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written
