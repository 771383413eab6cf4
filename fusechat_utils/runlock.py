"""One run folder, one writer: `with run_lock(run_dir): ...` holds an exclusive lock on `<run_dir>/.lock`.

A second `fusechat run` on the same folder fails at once with RunLocked naming the holder (pid, host, command,
since when). The lock is an `fcntl.flock`, so the kernel drops it when its holder dies, even by SIGKILL: a killed
run never leaves a stale lock behind, and the holder details left in the file are only read while it is held.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from fusechat_utils.errors import UserError

LOCK_NAME = ".lock"


class RunLocked(UserError):
    """Another process is writing this run folder."""


@contextmanager
def run_lock(run_dir: str | Path):
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"{run_dir} is being written by another run ({_holder(path)}); wait for it to end, "
                            f"or use another --run-name") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                  "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text())
        return f"pid {h['pid']} on {h['host']} since {h['since']}: {h['command']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"
