"""The typed params: defaults, overrides, and loud failures on unknown keys."""

from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, Params, load_params, parse_override

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_yaml_is_valid_and_complete():
    params = load_params(REPO / "params.yaml")
    # Every section of the typed config appears in params.yaml: the file is the single source.
    on_disk = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(on_disk) == set(Params().to_dict())
    assert params.model.grid == on_disk["model"]["grid"]


def test_override_parses_yaml_types():
    params = load_params(
        REPO / "params.yaml", ["train.max_steps=50", "data.page_size=[100, 200]", "train.lr=1e-3"]
    )
    assert params.train.max_steps == 50
    assert params.data.page_size == (100, 200)
    assert params.train.lr == pytest.approx(1e-3)


def test_unknown_override_key_is_named():
    with pytest.raises(ConfigError, match="train.max_stepz"):
        load_params(REPO / "params.yaml", ["train.max_stepz=5"])


def test_unknown_section_is_named():
    with pytest.raises(ConfigError, match="'trian'"):
        load_params(REPO / "params.yaml", ["trian.max_steps=5"])


def test_unknown_key_in_file_is_named(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("model:\n  gird: 8\n")
    with pytest.raises(ConfigError, match="model.gird"):
        load_params(bad)


def test_invalid_value_is_explained():
    with pytest.raises(ConfigError, match="train.max_steps"):
        load_params(
            REPO / "params.yaml", ["train.max_steps=-1"]
        )  # 0 is the untrained export (ADR 23)
    with pytest.raises(ConfigError, match="multiple of model.grid"):
        load_params(REPO / "params.yaml", ["model.grid=7"])


def test_override_needs_equals_sign():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.max_steps")


def test_digest_tracks_every_parameter():
    a = load_params(REPO / "params.yaml")
    b = load_params(REPO / "params.yaml", ["regions.padding=1"])
    assert a.digest() != b.digest()
    assert a.digest() == load_params(REPO / "params.yaml").digest()
    assert a.flat()["regions.padding"] == 0


def test_behaviour_digest_ignores_gate_and_registry_settings():
    a = load_params(REPO / "params.yaml")
    assert (
        a.behaviour_digest()
        == load_params(REPO / "params.yaml", ["gate.floors={page_r1: 0.9}"]).behaviour_digest()
    )
    assert a.behaviour_digest() != load_params(REPO / "params.yaml", ["rag.k=2"]).behaviour_digest()


def test_code_defaults_equal_params_yaml():
    """The typed defaults and params.yaml say the same, so a Params() built in code (tests, notebooks)
    behaves like the pipeline; a default that drifted is named with both values."""
    from pydantic import BaseModel

    from components.config import Params

    on_disk = load_params(REPO / "params.yaml")
    in_code = Params()
    drifted = []

    def walk(disk: BaseModel, code: BaseModel, prefix: str) -> None:
        for name in type(disk).model_fields:
            a, b = getattr(disk, name), getattr(code, name)
            if isinstance(a, BaseModel):
                walk(a, b, f"{prefix}{name}.")
            elif a != b:
                drifted.append(f"{prefix}{name}: params.yaml {a!r}, code {b!r}")

    walk(on_disk, in_code, "")
    assert not drifted, drifted
