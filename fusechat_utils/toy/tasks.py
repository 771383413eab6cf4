"""Toy task families, one per FuseChat domain, with seeded generators, disjoint splits and checkers.

Every item is a pure function of a key (e.g. (a, b) for addition); a hash of the key puts it in one split for good,
so pretraining, fusion (fixture) and held-out (benchmark) prompts never overlap whatever the seed. An example is a
dict: prompt, answer, gold (math), tests + entry_point (code), family, category, language.
"""

from __future__ import annotations

import hashlib
import random
import re
import string

SPLITS = {"pretrain": range(0, 5), "fuse": range(5, 8), "heldout": range(8, 10)}
ZH_DIGITS = "零一二三四五六七八九"
OPS = {"plus": "+", "minus": "-", "times": "*"}
NAMES, VARS = ["f", "g", "h"], ["x", "n", "y"]


def split_of(family, key):
    bucket = int(hashlib.sha1(f"{family}:{key}".encode()).hexdigest(), 16) % 10
    return next(name for name, tenths in SPLITS.items() if bucket in tenths)


def math_item(key):
    a, b = key
    return {"prompt": f"What is {a} + {b}?", "answer": f"{a} + {b} = \\boxed{{{a + b}}}", "gold": str(a + b),
            "family": "math", "category": "math", "language": "en"}


def math_key(rng):
    return (rng.randint(10, 99), rng.randint(1, 9))


def code_item(key):
    # The constant must be computed (a + b): translating the words alone does not pass the tests.
    name, var, op1, c1, a, b = key
    expr = f"{var} {OPS[op1]} {c1} + {a + b}"
    values = [0, 1, 2, 5, -3]
    tests = "\n".join(f"assert {name}({v}) == {eval(expr, {var: v})}" for v in values)
    prompt = f"Write a Python function `{name}({var})` that returns {var} {op1} {c1} plus the sum of {a} and {b}."
    return {"prompt": prompt, "answer": f"def {name}({var}):\n    return {expr}", "tests": tests,
            "entry_point": name, "examples": [(v, eval(expr, {var: v})) for v in values[:3]],
            "family": "code", "category": "code", "language": "en"}


def code_key(rng):
    ops = list(OPS)
    return (rng.choice(NAMES), rng.choice(VARS), rng.choice(ops), rng.randint(2, 9), rng.randint(1, 9), rng.randint(1, 9))


def general_item(key):
    (word,) = key
    return {"prompt": f"Reverse the word: {word}", "answer": word[::-1], "family": "general", "category": "general",
            "language": "en"}


def general_key(rng):
    return ("".join(rng.choice(string.ascii_lowercase[:12]) for _ in range(rng.randint(3, 5))),)


def to_chinese(n):
    hundreds, tens, ones = n // 100, n // 10 % 10, n % 10
    out = ZH_DIGITS[hundreds] + "百"
    if tens == 0 and ones == 0:
        return out
    if tens == 0:
        return out + "零" + ZH_DIGITS[ones]
    out += ZH_DIGITS[tens] + "十"
    return out + (ZH_DIGITS[ones] if ones else "")


def chinese_item(key):
    (n,) = key
    return {"prompt": f"把 {n} 写成中文数字。", "answer": to_chinese(n), "family": "chinese", "category": "chinese",
            "language": "zh"}


def chinese_key(rng):
    return (rng.randint(100, 999),)


FAMILIES = {"math": (math_key, math_item), "code": (code_key, code_item), "general": (general_key, general_item),
            "chinese": (chinese_key, chinese_item)}


def examples(family, split, n, seed):
    key_fn, item_fn = FAMILIES[family]
    rng = random.Random(f"{family}:{split}:{seed}")
    seen, out = set(), []
    for _ in range(n * 50):
        key = key_fn(rng)
        if key in seen or split_of(family, key) != split:
            continue
        seen.add(key)
        out.append(item_fn(key))
        if len(out) == n:
            break
    return out


def _boxed(text):
    found = re.findall(r"\\boxed\{([^{}]*)\}", text)
    return found[-1].strip() if found else None


def _code_ok(example, response):
    # Model output is untrusted code even here: run it in the kit's sandbox, as 03_scoring does.
    from fusechat_utils.verify import run_code

    return run_code(response, example["tests"], timeout_s=5.0).passed


def check(example, response):
    family = example["family"]
    if family == "math":
        return _boxed(response) == example["gold"]
    if family == "code":
        return _code_ok(example, response)
    return response.strip() == example["answer"]
