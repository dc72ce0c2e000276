"""Shared fixtures: isolated runtime state, tiny parameters and a tiny generated corpus."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (`make test` runs two workers) each worker gets its share of the cores, so
# two workers' torch thread pools do not fight over them; set before torch is imported, and
# inherited by the CLI subprocesses the tests start.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

# Runtime state of the whole test session goes to a temp dir, never to the user's .regionops/.
_SESSION_HOME = (
    Path(os.environ.get("PYTEST_REGIONOPS_HOME", ""))
    if os.environ.get("PYTEST_REGIONOPS_HOME")
    else None
)

# Tests use a tiny random BERT (4 MB) in place of the packaged 87 MB MiniLM: every model copy a
# test writes holds the encoder (tests/support/tiny_text_encoder.py). Tests of the pretrained
# space itself use PRETRAINED_OVERRIDES on top.
from tests.support.tiny_text_encoder import WIDTH as _TINY_WIDTH
from tests.support.tiny_text_encoder import tiny_text_encoder_dir

TINY_ENCODER_OVERRIDES = [
    f"model.text_encoder={tiny_text_encoder_dir()}",
    "model.text_encoder_sha256=null",
    f"model.dim={_TINY_WIDTH}",
]
# The packaged MiniLM back (its pinned sha256 and width), for tests of the pretrained space.
PRETRAINED_OVERRIDES = [
    "model.text_encoder=null",
    "model.text_encoder_sha256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "model.dim=384",
]

TINY_OVERRIDES = [
    *TINY_ENCODER_OVERRIDES,
    "data.n_docs=14",
    "data.max_pages_per_doc=2",
    "data.questions_per_page=2",
    "data.page_size=[306, 396]",
    "model.grid=8",
    "model.image_size=64",
    "model.hidden=64",
    "model.layers=1",
    "model.heads=2",
    "model.max_tokens_per_cell=8",
    "model.finetune_text_layers=0",
    "train.max_steps=6",
    "train.batch_size=4",
    "train.pseudo_label_warmup_steps=2",
    "train.val_check_interval=3",
    "train.log_every_n_steps=1",
    "index.candidates=8",
    "evaluate.n_highlights=2",
    "gate.floors={page_r1: 0.0, region_hit1: 0.0}",
    "reader.max_steps=3",
    "reader.batch_size=4",
    "reader.finetune_layers=1",
    "reader.contexts=3",
    "reader.max_context_tokens=24",
    "reader.checkpoint_every_n_steps=1",
    "reader.log_every_n_steps=1",
]


@pytest.fixture(scope="session", autouse=True)
def regionops_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = _SESSION_HOME or tmp_path_factory.mktemp("regionops_home")
    os.environ["REGIONOPS_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    os.environ["PREFECT_HOME"] = str(Path(home) / "prefect")
    from components.settings import configure_environment

    configure_environment()
    return Path(home)


@pytest.fixture(scope="session", autouse=True)
def stop_prefect_temporary_servers():
    """Stop Prefect's temporary API servers (started by in-process flow runs) while pytest's
    output is still open; left to Prefect's atexit hook, the stop logs to a closed stream."""
    yield
    # Flush the log and event workers first: they post to that server.
    for module_name, worker_name in (
        ("prefect.logging.handlers", "APILogWorker"),
        ("prefect.events.worker", "EventsWorker"),
    ):
        module = sys.modules.get(module_name)
        if module is not None:
            getattr(module, worker_name).drain_all(timeout=10)
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is not None:
        for server in list(server_module.SubprocessASGIServer._instances.values()):
            server.stop()


@pytest.fixture(autouse=True)
def restore_mlflow_uris():
    """A test that points MLflow at a store of its own puts it back when it ends.

    ``mlflow.set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` in the environment, which
    ``components.settings`` reads: left behind, the next test on the worker writes into the
    earlier test's store, whose folder pytest removes when that test passes.
    """
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {name: os.environ.get(name) for name in names}
    # MLflow's own module globals (unset = resolved from the environment on each call): put back
    # as they were, not pinned to what they resolved to, so a later monkeypatched variable still counts.
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    registry = sys.modules.get("mlflow.tracking._model_registry.utils")
    before = (
        getattr(tracking, "_tracking_uri", None),
        getattr(registry, "_registry_uri", None),
    )
    yield
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    registry = sys.modules.get("mlflow.tracking._model_registry.utils")
    if tracking is not None:
        tracking._tracking_uri = before[0]
    if registry is not None:
        registry._registry_uri = before[1]
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_report_header(config):
    """Free disk where the tests write, in every CI log (a full disk fails tests far from the cause)."""
    import shutil
    import tempfile

    free = {
        "tmp": shutil.disk_usage(tempfile.gettempdir()).free,
        "repo": shutil.disk_usage(REPO).free,
    }
    return "free disk: " + ", ".join(f"{name} {b / 2**30:.1f} GiB" for name, b in free.items())


@pytest.fixture(scope="session")
def tiny_params():
    from components.config import load_params

    return load_params(REPO / "params.yaml", TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_corpus(tiny_params, tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic corpus, generated once per test session."""
    from components.data.corpus import load_corpus
    from components.data.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(tiny_params, root)
    return load_corpus(root)
