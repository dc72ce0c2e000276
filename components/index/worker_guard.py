"""Worker processes die with the process that started them.

A ``ProcessPoolExecutor`` worker whose parent is killed (``kill -9`` of ``regionops index build``,
a Prefect cancellation) keeps waiting on its task queue, holding a loaded model and a core,
forever. On Linux the kernel is asked to SIGKILL the worker when its parent exits
(``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls ``os.getppid()``. Either way a
parent that died before the guard was armed is caught by comparing the parent pid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_SECONDS = 1.0


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _poll_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(_POLL_SECONDS)


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a worker process; ``parent_pid`` is the starter's ``os.getpid()``."""
    armed = _prctl_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the guard was armed
        os.kill(os.getpid(), signal.SIGKILL)
    if not armed:
        threading.Thread(
            target=_poll_parent, args=(parent_pid,), daemon=True, name="die-with-parent"
        ).start()
