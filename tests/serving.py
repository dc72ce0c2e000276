"""``mlflow models serve`` for tests: a free 127.0.0.1 port, its own process group, stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedModel:
    def __init__(self, url: str):
        self.url = url

    def post(self, records: list[dict], params: dict | None = None) -> tuple[int, dict]:
        payload: dict = {"dataframe_records": records}
        if params:
            payload["params"] = params
        req = urllib.request.Request(f"{self.url}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


@contextlib.contextmanager
def serve(model_uri: str, log_path: Path, timeout_s: float = 180) -> Iterator[ServedModel]:
    """Serve ``model_uri`` with the local environment until the block ends."""
    port = free_port()
    # tests/ must be importable (fake engines); mlflow execs `uvicorn`, which must be on PATH (the venv's bin)
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(log_path, "wb")  # noqa: SIM115 - closed in finally, after the server
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.time() + timeout_s
        while True:
            assert proc.poll() is None, Path(log_path).read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "server did not come up:\n" + Path(log_path).read_text()[-3000:]
            time.sleep(0.5)
        yield ServedModel(f"http://127.0.0.1:{port}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
