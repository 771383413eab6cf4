"""Running generated code and checking math answers for evaluation, through the kit's verifier when present.

`run_tests(program, tests, timeout_s) -> (passed, reason)` uses `fusechat_utils.verify.run_code` (the sandbox the
scoring step uses), so benchmark code runs through the same executor as training-data code.
Usage: `passed, reason = run_tests(prompt + completion, test + "\\ncheck(f)", 10.0)`.
"""

from __future__ import annotations

import re

CODE_BLOCK = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def executor_name() -> str:
    from fusechat_utils.sandbox import isolation

    return f"fusechat_utils.verify.run_code ({isolation()})"


def run_tests(program: str, tests: str, timeout_s: float = 10.0) -> tuple[bool, str]:
    """Run `program` followed by `tests` in the kit's sandbox; passed only on a clean exit within the limit."""
    from fusechat_utils.verify import run_code

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
