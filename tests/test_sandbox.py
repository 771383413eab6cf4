"""Hostile programs are contained by the sandbox and reported as failures with a reason."""

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.sandbox import isolation
from fusechat_utils.verify import run_code


def test_the_sandbox_uses_bubblewrap_here():
    assert isolation() == "bwrap+rlimits"


def test_infinite_loop_times_out():
    started = time.time()
    result = run_code("while True:\n    pass", "", timeout_s=2)
    assert not result.passed and "timeout" in result.reason and time.time() - started < 10


def test_fork_bomb_is_contained():
    result = run_code("import os\nwhile True:\n    os.fork()", "", timeout_s=3)
    assert not result.passed
    # nothing of it survives: within a few seconds no process runs as nobody any more
    for _ in range(50):
        survivors = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _uid(p) == 65534]
        if not survivors:
            break
        time.sleep(0.1)
    assert not survivors


def _uid(proc: Path) -> int | None:
    try:
        return next(int(x.split()[1]) for x in (proc / "status").read_text().splitlines() if x.startswith("Uid:"))
    except (OSError, StopIteration):
        return None


def test_memory_hog_fails():
    result = run_code("x = bytearray(4 * 1024 ** 3)", "", timeout_s=5)
    assert not result.passed and "MemoryError" in result.reason


def test_writing_outside_its_directory_fails_and_leaves_nothing(tmp_path):
    target = PROJECT_ROOT / "sandbox_escape.txt"
    program = f"open({str(target)!r}, 'w').write('x')\nopen('/root/escape.txt', 'w').write('x')"
    result = run_code(program, "", timeout_s=5)
    assert not result.passed and ("No such file" in result.reason or "Permission" in result.reason
                                  or "Read-only" in result.reason)
    assert not target.exists() and not Path("/root/escape.txt").exists()


def test_network_access_fails():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
    result = run_code(program, "", timeout_s=5)
    server.close()
    assert not result.passed and ("refused" in result.reason or "unreachable" in result.reason.lower())


def test_a_child_that_outlives_its_parent_is_killed(tmp_path):
    marker = Path("/tmp") / f"fusechat-daemon-{os.getpid()}"
    program = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(2)\n"
               f"    open({str(marker)!r}, 'w').write('alive')\n    os._exit(0)\nassert False, 'parent done'")
    result = run_code(program, "", timeout_s=5)
    assert not result.passed and "parent done" in result.reason
    time.sleep(3)
    assert not marker.exists()


def test_the_kits_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("FUSECHAT_SECRET", "s3cret")
    result = run_code("import os\nassert 'FUSECHAT_SECRET' not in os.environ, os.environ.get('FUSECHAT_SECRET')", "")
    assert result.passed, result.reason
    assert not run_code("import os\nprint(os.listdir('/work'))", "").passed


@pytest.mark.parametrize("n", [20])
def test_many_programs_run_fast_enough(n):
    from fusechat_utils.verify import run_code_many

    started = time.time()
    results = run_code_many([("def f(x):\n    return x", f"assert f({i}) == {i}") for i in range(n)], 5, 2)
    assert all(r.passed for r in results)
    assert (time.time() - started) / n < 1.0
