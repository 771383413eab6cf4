"""Toy task families: seeded generators with disjoint train / fuse / heldout splits, and a checker per family.

Families: `arith` (math, 2-digit addition, answer in \\boxed{}), `code` (a Python function of one argument with
two operations, graded by assert tests), `rev` (general, reverse 3-5 letters), `zhnum` (Chinese, numbers to
Chinese numerals). Usage: `rows = examples("arith", "heldout", 200)`; `check(rows[0], response) -> bool`.
"""

from __future__ import annotations

import random
import re
import string
import subprocess
import sys

FAMILIES = ("arith", "code", "rev", "zhnum")
CATEGORY = {"arith": "math", "code": "code", "rev": "general", "zhnum": "chinese"}
SPLITS = ("heldout", "fuse", "train")
# The heldout and fuse splits have fixed sizes; train takes the rest of each family's prompt universe.
SPLIT_SIZES = {"heldout": 200, "fuse": 600}
FUSE_SIZE = {"zhnum": 300}  # zhnum has only 999 distinct prompts
_DIGITS = "零一二三四五六七八九"


def zh_numeral(n: int) -> str:
    """1..999 as Chinese numerals (十 for 10-19, 零 for an inner zero: 105 -> 一百零五)."""
    hundreds, tens, ones = n // 100, n // 10 % 10, n % 10
    out = f"{_DIGITS[hundreds]}百" if hundreds else ""
    if tens:
        out += ("" if tens == 1 and not hundreds else _DIGITS[tens]) + "十"
    elif hundreds and ones:
        out += "零"
    return out + (_DIGITS[ones] if ones else "")


def _arith(a: int, b: int) -> dict:
    s = a + b
    return {"prompt": f"What is {a} + {b}?", "answer": f"{a} + {b} = {s}. The answer is \\boxed{{{s}}}.",
            "gold": str(s)}


_OPS = {"plus": "+", "minus": "-", "times": "*"}


def _code(name: str, var: str, op1: str, c1: int, op2: str, c2: int) -> dict:
    body = f"({var} {_OPS[op1]} {c1}) {_OPS[op2]} {c2}"
    fn = eval(f"lambda {var}: {body}")  # noqa: S307 - our own generated expression
    tests = "\n".join(f"assert {name}({x}) == {fn(x)}" for x in (0, 1, 3, 7, -2))
    return {"prompt": f"Write a function `{name}({var})` that returns {var} {op1} {c1}, then {op2} {c2}.",
            "answer": f"def {name}({var}):\n    return {body}", "tests": tests, "entry_point": name}


def _universe(family: str) -> list[tuple]:
    if family == "arith":
        return [(a, b) for a in range(10, 100) for b in range(10, 100)]
    if family == "code":
        return [(n, v, o1, c1, o2, c2) for n in "fgh" for v in ("x", "n", "y") for o1 in _OPS for o2 in _OPS
                for c1 in range(2, 14) for c2 in range(2, 14)]
    if family == "zhnum":
        return [(n,) for n in range(1, 1000)]
    rng = random.Random(1234)  # a fixed pool of distinct words, independent of the caller's seed
    words = {"".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 5))) for _ in range(12000)}
    return [(w,) for w in sorted(words)]


def _make(family: str, key: tuple) -> dict:
    if family == "arith":
        row = _arith(*key)
    elif family == "code":
        row = _code(*key)
    elif family == "rev":
        row = {"prompt": f"Reverse the word: {key[0]}", "answer": key[0][::-1]}
    else:
        row = {"prompt": f"把数字 {key[0]} 写成中文。", "answer": zh_numeral(key[0])}
    base = {"gold": None, "tests": None, "entry_point": None}
    return {**base, **row, "family": family, "category": CATEGORY[family],
            "language": "zh" if family == "zhnum" else "en"}


def split_keys(family: str) -> dict[str, list[tuple]]:
    """The family's prompt universe, shuffled once with a fixed seed and cut into disjoint splits."""
    keys = _universe(family)
    random.Random(f"split-{family}").shuffle(keys)
    held, fuse = SPLIT_SIZES["heldout"], FUSE_SIZE.get(family, SPLIT_SIZES["fuse"])
    return {"heldout": keys[:held], "fuse": keys[held:held + fuse], "train": keys[held + fuse:]}


def examples(family: str, split: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """Up to `n` examples of `family` from `split` (train is sampled with `seed`; heldout/fuse keep their order)."""
    if family not in FAMILIES or split not in SPLITS:
        raise ValueError(f"unknown family/split {family!r}/{split!r}; families {FAMILIES}, splits {SPLITS}")
    keys = list(split_keys(family)[split])
    if split == "train":
        random.Random(seed).shuffle(keys)
    return [_make(family, k) for k in keys[:n]]


def last_boxed(text: str) -> str | None:
    found = re.findall(r"\\boxed\{([^{}]*)\}", text or "")
    return found[-1].strip() if found else None


def run_code_tests(code: str, tests: str, timeout_s: float = 5.0) -> bool:
    """Run `code` then the assert `tests` in a fresh Python subprocess; True when it exits 0 in time."""
    try:
        done = subprocess.run([sys.executable, "-I", "-c", f"{code}\n{tests}\n"], capture_output=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def extract_code(response: str) -> str:
    fenced = re.findall(r"```(?:python)?\n(.*?)```", response or "", re.S)
    return fenced[-1] if fenced else (response or "")


def check(example: dict, response: str) -> bool:
    """Is `response` a correct answer to `example`? Math: last \\boxed{}; code: asserts; others: exact match."""
    family = example["family"]
    if family == "arith":
        return last_boxed(response) == str(example["gold"])
    if family == "code":
        return run_code_tests(extract_code(response), example["tests"])
    return (response or "").strip().rstrip("。.") == example["answer"]


def quick_check(example: dict, response: str) -> bool:
    """`check` without a subprocess for code (exec with no builtins), for grading thousands of samples fast."""
    if example["family"] != "code":
        return check(example, response)
    scope: dict = {}
    try:
        exec(extract_code(response), {"__builtins__": {}}, scope)  # noqa: S102 - toy outputs, no builtins
        fn = scope[example["entry_point"]]
        return all(eval(t.removeprefix("assert "), {"__builtins__": {}}, {example["entry_point"]: fn})  # noqa: S307
                   for t in example["tests"].splitlines())
    except Exception:  # noqa: BLE001 - any failure of generated code is a wrong answer
        return False
