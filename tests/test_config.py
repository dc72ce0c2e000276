"""The typed params: defaults, overrides, and loud failures on unknown keys."""

from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, Params, load_params, parse_override

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_yaml_is_valid_and_complete():
    params = load_params(REPO / "params.yaml")
    # Every section of the typed config appears in params.yaml: the file is the single source.
    on_disk = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(on_disk) == set(Params().to_dict())
    assert params.model.grid == on_disk["model"]["grid"]


def test_override_parses_yaml_types():
    params = load_params(REPO / "params.yaml", ["train.max_steps=50", "data.page_size=[100, 200]", "train.lr=1e-3"])
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
        load_params(REPO / "params.yaml", ["train.max_steps=-1"])  # 0 is the untrained export (ADR 23)
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
    assert a.behaviour_digest() == load_params(REPO / "params.yaml", ["gate.floors={page_r1: 0.9}"]).behaviour_digest()
    assert a.behaviour_digest() != load_params(REPO / "params.yaml", ["rag.k=2"]).behaviour_digest()
