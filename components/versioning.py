"""Run DVC stages and move data to the DVC remote, through DVC's own command line.

The CLI rather than ``dvc.api``: DVC's Python API needs the process's working
directory inside the repo and is not safe from threads (docs/design.md §8); a subprocess
gives each stage its own clean process and its own error message.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero; the message carries the stage's own last lines of output."""


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    ran: bool  # False: DVC found it up to date and skipped it

    def to_dict(self) -> dict:
        return {"stage": self.stage, "ran": self.ran}


def _dvc_bin() -> str:
    # The venv that runs us also holds dvc and the regionops console script.
    candidate = Path(sys.executable).parent / "dvc"
    return str(candidate) if candidate.exists() else "dvc"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = (
        "1"  # a piped child buffers stdout: progress bars would arrive at the end
    )
    env.update(extra or {})
    return env


def stage_names(project_dir: Path) -> list[str]:
    """Stages in dvc.yaml order (the order in which they are declared is their dependency order)."""
    spec = yaml.safe_load((Path(project_dir) / "dvc.yaml").read_text())
    return list(spec["stages"])


def stage_is_current(stage: str, project_dir: Path) -> bool:
    proc = subprocess.run(
        [_dvc_bin(), "status", "--json", stage],
        cwd=project_dir,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StageFailed(
            f"dvc status {stage} failed: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return json.loads(proc.stdout or "{}") == {}


class StageTimeout(StageFailed):
    """A DVC stage ran past its time limit; its ``dvc repro`` and the stage's own process were stopped."""


LineSink = Callable[[str], None]


def _print_line(line: str) -> None:
    print(line, flush=True)


def _pump(stream, lines: queue.Queue) -> None:
    """Read a child's output into whole lines; a carriage-return redraw keeps only what a terminal shows."""
    pending = b""
    for chunk in iter(lambda: stream.read1(65536), b""):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            shown = raw.rstrip(b"\r").rsplit(b"\r", 1)[-1]
            if shown.strip():
                lines.put(shown.decode("utf-8", "replace"))
        if (
            len(pending) > 1 << 16
        ):  # a bar redrawn with \r only, for a long time: keep its last frame
            pending = pending.rsplit(b"\r", 1)[-1][-(1 << 16) :]
    shown = pending.rsplit(b"\r", 1)[-1]
    if shown.strip():
        lines.put(shown.decode("utf-8", "replace"))
    lines.put(None)


def stop_process_group(proc: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """SIGTERM the child's process group (``dvc repro`` and the stage it runs), then SIGKILL what is left.

    The group id is the child's PID (it was started in a session of its own), so this reaches
    the stage's own process too, which ``dvc repro`` would otherwise leave running, holding
    DVC's lock and the CPU.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(
        ProcessLookupError
    ):  # a stage process that outlived dvc's exit, or ignored SIGTERM
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _run_streaming(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    on_line: LineSink | None = None,
    timeout: float | None = None,
    tail_lines: int = 40,
) -> tuple[int, str]:
    """Run ``cmd`` in its own process group, handing each output line to ``on_line``; keep its last lines.

    On a timeout, or any exception here (a task timeout or a cancellation raised into this
    thread, a failing ``on_line``), the whole process group is stopped before the error goes on.
    """
    sink = on_line or _print_line
    tail: deque[str] = deque(maxlen=tail_lines)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(
        target=_pump, args=(proc.stdout, lines), daemon=True, name="stage-output"
    ).start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise StageTimeout(
                    f"{' '.join(cmd[1:])} ran past its {timeout:.0f} s limit and was stopped:\n"
                    + "\n".join(tail)
                )
            try:
                line = lines.get(
                    timeout=0.5
                )  # short waits: an exception raised into this thread lands soon
            except queue.Empty:
                continue
            if line is None:
                break
            tail.append(line)
            sink(line)
        return proc.wait(), "\n".join(tail)
    finally:
        stop_process_group(proc)


def repro_stage(
    stage: str,
    project_dir: Path,
    env: dict[str, str] | None = None,
    on_line: LineSink | None = None,
    timeout: float | None = None,
) -> StageOutcome:
    """Reproduce one stage (its upstream stages must be current). Skips it when DVC says so.

    ``on_line`` receives each line the stage prints (stdout, stderr); ``timeout`` (seconds)
    stops the stage and raises ``StageTimeout``.
    """
    project_dir = Path(project_dir)
    if stage_is_current(stage, project_dir):
        return StageOutcome(stage, ran=False)
    code, tail = _run_streaming(
        [_dvc_bin(), "repro", "--single-item", stage],
        project_dir,
        _env(env),
        on_line=on_line,
        timeout=timeout,
    )
    if code != 0:
        raise StageFailed(f"stage '{stage}' failed (exit {code}):\n{tail}")
    return StageOutcome(stage, ran=True)


def ensure_remote(
    project_dir: Path, remote_url: str, name: str = "regionops", endpoint_url: str | None = None
) -> None:
    """Make ``remote_url`` the default DVC remote in ``.dvc/config.local`` (per machine, not in git)."""
    local = subprocess.run(
        [_dvc_bin(), "remote", "add", "--local", "--force", "--default", name, str(remote_url)],
        cwd=project_dir,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if local.returncode != 0:
        raise StageFailed(f"dvc remote add failed: {local.stderr.strip()}")
    if endpoint_url is None and str(remote_url).startswith("s3://"):
        from components.settings import get_settings

        endpoint_url = get_settings().s3_endpoint_url
    if endpoint_url:  # an S3-compatible store (MinIO); credentials come from AWS_* variables
        modify = subprocess.run(
            [_dvc_bin(), "remote", "modify", "--local", name, "endpointurl", endpoint_url],
            cwd=project_dir,
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if modify.returncode != 0:
            raise StageFailed(f"dvc remote modify endpointurl failed: {modify.stderr.strip()}")


def push(project_dir: Path) -> str:
    """Push every stage output to the default remote; returns DVC's summary line."""
    proc = subprocess.run(
        [_dvc_bin(), "push"],
        cwd=project_dir,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StageFailed(f"dvc push failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return (proc.stdout.strip().splitlines() or [""])[-1]


def pull(project_dir: Path, targets: tuple[str, ...] = ()) -> str:
    """Fetch stage outputs (``targets``: stages or paths; all when empty) from the default remote."""
    proc = subprocess.run(
        [_dvc_bin(), "pull", *targets],
        cwd=project_dir,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StageFailed(f"dvc pull failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return (proc.stdout.strip().splitlines() or [""])[-1]


def data_hash(project_dir: Path, path: str = "data/corpus") -> str | None:
    """The md5 DVC recorded for an output in dvc.lock (the data version used for lineage)."""
    lock = Path(project_dir) / "dvc.lock"
    if not lock.exists():
        return None
    spec = yaml.safe_load(lock.read_text()) or {}
    for stage in (spec.get("stages") or {}).values():
        for out in stage.get("outs", []) or []:
            if out.get("path") == path:
                return out.get("md5")
    return None


def is_dvc_project(project_dir: Path) -> bool:
    return (Path(project_dir) / ".dvc").is_dir()


def add(project_dir: Path, path: str) -> str:
    """``dvc add`` a folder (caches and versions it, writes ``<path>.dvc``); returns the md5 DVC recorded."""
    project_dir = Path(project_dir)
    proc = subprocess.run(
        # not --quiet: it also silences the error message StageFailed should carry
        [_dvc_bin(), "add", path],
        cwd=project_dir,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StageFailed(f"dvc add {path} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return tracked_hash(project_dir, path) or ""


def tracked_hash(project_dir: Path, path: str) -> str | None:
    """The md5 in ``<path>.dvc`` (written by ``dvc add``), or None when the path is not tracked."""
    dvc_file = Path(project_dir) / f"{path}.dvc"
    if not dvc_file.exists():
        return None
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or []
    return outs[0].get("md5") if outs else None


def commit(project_dir: Path, stage: str) -> None:
    """Record a stage's outputs, produced outside ``dvc repro`` (the sharded index build), in dvc.lock."""
    proc = subprocess.run(
        [_dvc_bin(), "commit", "--force", stage],
        cwd=Path(project_dir),
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StageFailed(
            f"dvc commit {stage} failed: {proc.stderr.strip() or proc.stdout.strip()}"
        )


def stage_data_deps(project_dir: Path, stage: str) -> list[str]:
    """The dependencies of ``stage`` that DVC tracks (outputs of other stages or of ``.dvc`` files),
    as dvc.yaml declares them with params interpolated: exactly what to ``dvc pull`` before the
    stage runs on a machine that has only the code (the GPU training Job). Code dependencies
    (``components/...``) come with the image and are left out.

    DVC's own parser, not a re-implementation of its ``${...}`` interpolation; read once, in
    the calling process, so the working-directory caveat above does not apply.
    """
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    with Repo(str(Path(project_dir).resolve())) as repo:
        stages = {s.name: s for s in repo.index.stages if isinstance(s, PipelineStage)}
        if stage not in stages:
            raise KeyError(f"dvc.yaml has no stage {stage!r} (stages: {', '.join(stages)})")
        # compared as absolute paths: a .dvc file's outs are relative to its own folder
        outs = [o.fs_path.rstrip("/") for s in repo.index.stages for o in s.outs]
        return [
            os.path.relpath(d.fs_path, repo.root_dir)
            for d in stages[stage].deps
            if any(d.fs_path == out or d.fs_path.startswith(f"{out}/") for out in outs)
        ]


if __name__ == "__main__":
    # `python -m components.versioning data-deps train`: one path a line, for `dvc pull` in a Job.
    import argparse

    parser = argparse.ArgumentParser(
        description="The DVC-tracked dependencies of a dvc.yaml stage."
    )
    parser.add_argument("command", choices=["data-deps"])
    parser.add_argument("stage")
    parser.add_argument("--project-dir", default=".")
    args = parser.parse_args()
    print("\n".join(stage_data_deps(Path(args.project_dir), args.stage)))
