"""Verification of sampled responses: math answers against gold (math-verify), code against tests (sandboxed).

Usage:
    check_math("... so the answer is \\boxed{\\frac12}", "0.5")  -> True
    run_code("def f(x):\\n    return x + 1", "assert f(1) == 2")  -> CodeResult(passed=True, reason="passed")
"""

from __future__ import annotations

import ast
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fusechat_utils.sandbox import isolation, run_python


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


def run_code(program: str, tests: str, timeout_s: float = 10.0) -> CodeResult:
    """Run program + tests in the sandbox (see fusechat_utils.sandbox); passed means exit status 0."""
    result = run_python(f"{program}\n\n{tests}\n", timeout_s=timeout_s)
    if result.timed_out:
        return CodeResult(False, f"timeout after {timeout_s:g} s [{isolation()}]")
    if result.returncode == 0:
        return CodeResult(True, "passed")
    lines = [x for x in result.stderr.strip().splitlines() if x.strip()]
    last = lines[-1] if lines else f"exit status {result.returncode}"
    if result.returncode < 0 and not lines:
        last = f"killed by signal {-result.returncode}"
    return CodeResult(False, last[:300])


def run_code_many(items: list[tuple[str, str]], timeout_s: float = 10.0, workers: int = 2) -> list[CodeResult]:
    """run_code over (program, tests) pairs, `workers` sandboxes at a time, results in input order.

    Each distinct pair runs once: n samples of a small source often repeat the same program, and a verdict is a
    function of the program text (its tests are fixed asserts).
    """
    unique = list(dict.fromkeys(items))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        verdicts = dict(zip(unique, pool.map(lambda item: run_code(item[0], item[1], timeout_s), unique)))
    return [verdicts[item] for item in items]
