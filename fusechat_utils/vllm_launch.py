"""Start a kit module in the vLLM venv as a worker process, wait for it, and leave nothing of it running.

Usage: `code = run_module(".venv-vllm/bin/python", "fusechat_utils.sampling_vllm", [request],
env={"CUDA_VISIBLE_DEVICES": "0,1"})`; `kill_running()` ends every worker still running (an interrupted caller).
Used by 02_sampling (`sampling.run_vllm_worker`) and 07_eval (`evaluation.generate.generate_raw_vllm`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from fusechat_utils.config import PROJECT_ROOT

_running: set[subprocess.Popen] = set()
_lock = threading.Lock()


def python_path(python: str) -> str:
    """A relative path with a folder in it (`.venv-vllm/bin/python`) means the project's; a bare name is looked
    up on PATH."""
    return python if Path(python).is_absolute() or os.sep not in python else str(PROJECT_ROOT / python)


def run_module(python: str, module: str, args: list[str], env: dict[str, str] | None = None) -> int:
    """Run `python -m module *args` from the project root with the kit importable; returns its exit code.
    `env` is added to this process's environment (e.g. CUDA_VISIBLE_DEVICES for one worker's GPUs)."""
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT),
                "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"), **(env or {})}
    # Its own session, killed whole when it ends: a worker that dies leaves vLLM's helpers (multiprocessing's
    # resource_tracker ignores SIGTERM) running otherwise.
    proc = subprocess.Popen([python_path(python), "-m", module, *args], env=full_env, cwd=PROJECT_ROOT,
                            start_new_session=True)
    with _lock:
        _running.add(proc)
    try:
        return proc.wait()
    finally:
        with _lock:
            _running.discard(proc)
        _kill_group(proc)


def kill_running() -> None:
    """Kill every worker (and its helpers) still running: its own session does not get the caller's Ctrl-C."""
    with _lock:
        procs = list(_running)
    for proc in procs:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
