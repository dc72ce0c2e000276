"""Server processes for tests: started on 127.0.0.1 in their own process group, awaited, stopped by PID.

Every real server a test talks to (``mlflow models serve``, ``mlflow server``, ``prefect
server start``, ``prefect worker start``, PostgreSQL, moto) goes through ``start`` and
``Server.stop``, so none outlives its test and none binds beyond loopback.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@contextlib.contextmanager
def recording_webhook(path: str = "/hook"):
    """A webhook on 127.0.0.1 that records each POST's JSON body: yields (url, bodies)."""
    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}", received
    finally:
        server.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    log: Path
    url: str = ""
    extra: dict = field(default_factory=dict)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group we started (its leader's PID is the group id), then SIGKILL.

        Processes that moved to groups of their own (a Prefect worker starts each flow run in
        one) are found as children by PID first and stopped too.
        """
        import psutil

        if self.proc.poll() is not None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        os.killpg(self.proc.pid, signal.SIGTERM)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def start(
    name: str, cmd: list[str], log: Path, env: dict[str, str], url: str = "", **kwargs
) -> Server:
    """``cmd`` in a new session (its own process group), output appended to ``log``."""
    with open(log, "ab") as handle:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            **kwargs,
        )
    return Server(name, proc, Path(log), url)


def wait_until(server: Server, ready: Callable[[], bool], timeout: float) -> Server:
    """Poll ``ready`` until it holds; a server that exits or never gets ready is stopped and reported."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}"
            )
        if ready():
            return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{server.name} did not answer within {timeout:.0f} s:\n{server.tail()}")


@contextlib.contextmanager
def running(
    name: str,
    cmd: list[str],
    log: Path,
    env: dict[str, str],
    url: str,
    health_path: str,
    timeout: float = 180,
):
    """A server that is up (``url + health_path`` answers 200) for the ``with`` block, stopped after."""
    server = start(name, cmd, log, env, url)
    try:
        wait_until(server, lambda: http_ok(url + health_path), timeout)
        yield server
    finally:
        server.stop()
