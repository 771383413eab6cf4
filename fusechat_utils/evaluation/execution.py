"""Running generated code and checking math answers for evaluation, through the kit's verifier when present.

`run_tests(program, tests, timeout_s) -> (passed, reason)` uses `fusechat_utils.verify.run_code` (the sandbox the
scoring step uses), so benchmark code runs through the same executor as training-data code. Until that module is
importable a plain subprocess with a timeout stands in (no sandbox; recorded as `executor` in eval_settings.json).
Usage: `passed, reason = run_tests(prompt + completion, test + "\\ncheck(f)", 10.0)`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

CODE_BLOCK = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def executor_name() -> str:
    try:
        from fusechat_utils.verify import run_code  # noqa: F401
    except ImportError:
        return "subprocess (fusechat_utils.verify not available)"
    return "fusechat_utils.verify.run_code"


def _subprocess_run(program: str, tests: str, timeout_s: float) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "prog.py")
        with open(path, "w") as fh:
            fh.write(program + "\n\n" + tests + "\n")
        try:
            proc = subprocess.run([sys.executable, path], cwd=tmp, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False, "timeout"
    if proc.returncode == 0:
        return True, "passed"
    last = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
    return False, last[:200]


def run_tests(program: str, tests: str, timeout_s: float = 10.0) -> tuple[bool, str]:
    """Run `program` followed by `tests`; passed only if the process exits cleanly within the time limit."""
    try:
        from fusechat_utils.verify import run_code
    except ImportError:
        return _subprocess_run(program, tests, timeout_s)
    result = run_code(program, tests, timeout_s)
    return bool(result.passed), str(result.reason)


def extract_code(text: str) -> str:
    """The last fenced Python block of a chat response, else the whole text (a bare completion)."""
    blocks = CODE_BLOCK.findall(text or "")
    return blocks[-1] if blocks else (text or "")


def check_math(response: str, gold: str) -> bool:
    """math-verify equivalence of the response's final answer and the gold answer (the scoring step's checker)."""
    try:
        from fusechat_utils.verify import check_math as kit_check
    except ImportError:
        kit_check = None
    if kit_check is not None:
        return bool(kit_check(response, gold))
    from math_verify import parse, verify

    gold_parsed = parse(f"${gold}$") or parse(str(gold))
    return bool(gold_parsed) and bool(verify(gold_parsed, parse(response or "")))
