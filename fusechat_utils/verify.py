"""Verification of sampled responses: math answers against gold (math-verify), code against tests (sandboxed).

Usage:
    check_math("... so the answer is \\boxed{\\frac12}", "0.5")  -> True
    run_code("def f(x):\\n    return x + 1", "assert f(1) == 2")  -> CodeResult(passed=True, reason="passed")
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fusechat_utils.graded_asserts import CHECKS, TESTS_FUNCTION, judge, rewrite, sandbox_source
from fusechat_utils.sandbox import isolation, run_python

# imported before the program runs, so that what it patches in them is given back before the tests
PRELOADED = ("math", "cmath", "operator", "re", "string", "collections", "itertools", "functools", "heapq",
             "bisect", "copy", "random", "fractions", "typing", "json", "types")


# ----------------------------------------------------------------------------------------------------------------
# math


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, nested braces kept."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            if depth == 0:
                return text[i:j].strip()
            depth -= 1
    return None


def extract_answer(response: str) -> str | None:
    """The final answer: the last \\boxed{...} (nested braces kept), else what follows "The answer is"."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    found = re.findall(r"[Tt]he (?:final )?answer is[:\s]*\$?([^\n$]+?)\$?\s*\.?\s*$", response, flags=re.M)
    return found[-1].strip() if found else None


def check_math(response: str, gold: str) -> bool:
    """Is the response's final answer equal to the gold answer (symbolically, via math-verify)?"""
    from math_verify import parse, verify

    answer = extract_answer(response)
    if answer is None or gold is None:
        return False
    if answer.strip() == str(gold).strip():
        return True
    # parsing_timeout=None: math-verify's signal-based timeout only works in the main thread
    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    answer_parsed = parse(f"${answer}$", parsing_timeout=None)
    return bool(gold_parsed and answer_parsed and verify(gold_parsed, answer_parsed, timeout_seconds=None))


# ----------------------------------------------------------------------------------------------------------------
# code


@dataclass
class CodeResult:
    passed: bool
    reason: str


def extract_code(response: str) -> str:
    """The ```python fenced block(s) of a response, joined; the raw text when there is none."""
    blocks = re.findall(r"```(?:python|py)?[^\n]*\n(.*?)```", response, flags=re.S)
    return "\n\n".join(b.strip("\n") for b in blocks) if blocks else response.strip()


def static_check(program: str, entry_point: str | None) -> tuple[bool, str]:
    """Does the program parse, and define the entry point at top level?"""
    try:
        tree = ast.parse(program)
    except SyntaxError as err:
        return False, f"syntax error: {err.msg} (line {err.lineno})"
    if entry_point:
        names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        if entry_point not in names:
            return False, f"entry point {entry_point!r} not defined"
    return True, "ok"


# Runs the program as a module named "__main__", gives back the builtins and standard modules it may have patched,
# then runs the tests (rewritten by graded_asserts: a function whose parameters are the checks) with their own copy
# of the builtins; reports the nonce and the literal expectations' digests. See run_code and graded_asserts.
HARNESS = """\
def _fusechat_harness(program, tests, checks_source):
    import os, sys, builtins, types, json
    channel = int(sys.argv.pop(1))
    nonce, write, dumps = os.read(channel, 64), os.write, json.dumps
    os.set_inheritable(channel, False)
    for name in %r:
        __import__(name)
    space = {}
    exec(checks_source, space)
    checks = space["make_checks"]()
    main = type(sys)("__main__")
    main.__file__ = sys.argv[0]
    sys.modules["__main__"] = main
    pristine = dict(vars(builtins))
    modules = [(m, dict(vars(m))) for n, m in list(sys.modules.items())
               if type(m) is types.ModuleType and n != "__main__"]
    exec(compile(program, "<program>", "exec"), main.__dict__)
    for module, saved in [(builtins, pristine)] + modules:
        names = vars(module)
        for key in [k for k in names if k not in saved]:
            del names[key]
        names.update(saved)
    sys.modules.update((m.__name__, m) for m, _ in modules if m.__name__ in sys.modules)
    space = dict(main.__dict__)
    exec(compile(tests, "<tests>", "exec"), space)
    run = space.pop(%r, None)
    if run is not None:
        space["__builtins__"] = dict(pristine)  # a function takes its builtins when made: make it again
        types.FunctionType(run.__code__, space)(*[checks[name] for name in %r])
    write(channel, nonce + b"\\n" + dumps(checks["reported"]).encode())


_fusechat_harness(%%s, %%s, %%s)
""" % (PRELOADED, TESTS_FUNCTION, CHECKS)


def run_code(program: str, tests: str, timeout_s: float = 10.0) -> CodeResult:
    """Run program + tests in the sandbox (see fusechat_utils.sandbox) under HARNESS; passed means the tests ran
    and every literal expectation held (graded_asserts.judge, on this side).

    The harness reads a per-run random nonce from its private channel (not in any file), runs the code and writes
    the nonce back only after the last test line executed without an exception; passed needs that and exit status
    0. So exiting 0 before the tests (sys.exit(main()) under __main__, os._exit(0), an atexit hook forcing the
    status, a swallowing sys.excepthook, a printed "passed" line) fails: "exited before the tests finished".
    `assert f(x) == <literal>` is judged here from a digest of f(x) (the literal never enters the sandbox); other
    comparisons run there on plain values (graded_asserts), so rigged __eq__, builtin subclasses, patched
    builtins and reading the expected value from a frame or the script fail.
    """
    source, expected = rewrite(tests)
    nonce = secrets.token_hex(16).encode()
    script = HARNESS % (ascii(program + "\n"), ascii(source + "\n"), ascii(sandbox_source()))
    result = run_python(script, timeout_s=timeout_s, channel=nonce)
    marker, _, report = result.channel.partition(b"\n")
    finished = marker == nonce
    if result.timed_out:
        return CodeResult(False, f"timeout after {timeout_s:g} s [{isolation()}]")
    if result.returncode == 0:
        if not finished:
            return CodeResult(False, "exited before the tests finished (exit status 0)")
        failure = judge(expected, _report(report))
        return CodeResult(False, failure) if failure else CodeResult(True, "passed")
    lines = [x for x in result.stderr.strip().splitlines() if x.strip()]
    if lines:
        return CodeResult(False, lines[-1][:300])
    status = result.returncode
    reason = f"killed by signal {-status}" if status < 0 else f"exit status {status}" + (
        f" (signal {status - 128})" if status > 128 else "")
    return CodeResult(False, reason + (" after the tests passed" if finished else ""))


def _report(data: bytes) -> dict:
    try:
        report = json.loads(data.decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def run_code_many(items: list[tuple[str, str]], timeout_s: float = 10.0, workers: int = 2) -> list[CodeResult]:
    """run_code over (program, tests) pairs, `workers` sandboxes at a time, results in input order.

    Each distinct pair runs once: n samples of a small source often repeat the same program, and a verdict is a
    function of the program text (its tests are fixed asserts).
    """
    unique = list(dict.fromkeys(items))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        verdicts = dict(zip(unique, pool.map(lambda item: run_code(item[0], item[1], timeout_s), unique)))
    return [verdicts[item] for item in items]
