"""Where code prompts' tests come from (the paper keeps "prompts with test cases" and says no more).

- self-oss-instruct-sc2-exec-filter-50k: the response holds the solution and then assert-based tests.
- greengerong/leetcode: no test column; asserts are built from the `**Example N:**` blocks of `content`
  (`**Input:** nums = [2,7,11,15], target = 9` / `**Output:** [0,1]`) against the first `def` of `python`.
"""

from __future__ import annotations

import ast
import re

LITERALS = {"true": "True", "false": "False", "null": "None"}


def _first_def(code: str) -> str | None:
    found = re.search(r"^def (\w+)\s*\(", code, flags=re.M)
    return found.group(1) if found else None


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:python|py)?[^\n]*\n(.*?)```", text, flags=re.S)


def self_oss_tests(response: str) -> tuple[str, str] | None:
    """(assert statements, entry point) from a self-oss-instruct response, or None when it has no asserts."""
    blocks = _code_blocks(response) or [response]
    entry = next((name for b in blocks if (name := _first_def(b))), None)
    asserts = [line.strip() for b in blocks for line in b.splitlines() if line.strip().startswith("assert ")]
    if not asserts or not entry:
        return None
    valid = [a for a in asserts if _parses(a)]
    return ("\n".join(valid), entry) if valid else None


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except SyntaxError:
        return False


def _unescape(text: str) -> str:
    """greengerong/leetcode markdown escapes brackets and underscores: '\\[2,7\\]' -> '[2,7]'."""
    return re.sub(r"\\([\[\]_*])", r"\1", text)


def _literal(text: str):
    text = re.sub(r"\b(true|false|null)\b", lambda m: LITERALS[m.group(1)], text.strip().rstrip("."))
    return ast.literal_eval(text)


def _arguments(text: str) -> dict | None:
    """'nums = [2,7,11,15], target = 9' -> {'nums': [...], 'target': 9}; None if any value does not parse."""
    parts = re.split(r",\s*(?=[A-Za-z_]\w*\s*=)", text.strip())
    args = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or not name.strip().isidentifier():
            return None
        try:
            args[name.strip()] = _literal(value)
        except (ValueError, SyntaxError):
            return None
    return args


def leetcode_tests(content: str, python: str) -> tuple[str, str] | None:
    """(assert statements, entry point) from a leetcode row's examples, or None when no example parses."""
    entry = _first_def("\n".join(_code_blocks(python)) or python)
    if not entry:
        return None
    tests = []
    pattern = r"\*\*Input:?\*\*:?\s*(.+?)\n\s*\*\*Output:?\*\*:?\s*(.+?)(?:\n|$)"
    for inputs, output in re.findall(pattern, content):
        args = _arguments(_unescape(inputs.replace("`", "")))
        try:
            expected = _literal(_unescape(output.replace("`", "")))
        except (ValueError, SyntaxError):
            continue
        if args is not None:
            call = ", ".join(f"{k}={v!r}" for k, v in args.items())
            tests.append(f"assert {entry}({call}) == {expected!r}")
    return ("\n".join(tests), entry) if tests else None
