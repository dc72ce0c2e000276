"""``mlflow models serve`` for tests (``tests.support.servers``: a free 127.0.0.1 port, its own process group, stopped by PID)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import free_port, running

REPO = Path(__file__).resolve().parents[2]


class ServedModel:
    def __init__(self, url: str):
        self.url = url

    def post(self, records: list[dict], params: dict | None = None) -> tuple[int, dict]:
        payload: dict = {"dataframe_records": records}
        if params:
            payload["params"] = params
        req = urllib.request.Request(
            f"{self.url}/invocations",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


@contextlib.contextmanager
def serve(
    model_uri: str,
    log_path: Path,
    timeout_s: float = 180,
    env_manager: str = "local",
    env_root: Path | None = None,
) -> Iterator[ServedModel]:
    """Serve ``model_uri`` until the block ends: in this environment (``local``, where tests/ is
    importable for fake engines), or in one MLflow builds from the model's requirements
    (``virtualenv``/``uv``, under ``env_root``), which must need nothing from this checkout."""
    port = free_port()
    # mlflow execs `uvicorn` (local) and `pyenv` (virtualenv): the venv's bin and PATH must be searched
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if env_manager == "local":
        env["PYTHONPATH"] = str(REPO)
    else:
        env.pop("PYTHONPATH", None)
        if env_root is not None:
            env["MLFLOW_ENV_ROOT"] = str(env_root)
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        env_manager,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    url = f"http://127.0.0.1:{port}"
    with running("mlflow models serve", cmd, Path(log_path), env, url, "/ping", timeout_s):
        yield ServedModel(url)
