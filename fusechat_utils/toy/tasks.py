"""Toy task families, one per FuseChat domain, with seeded generators, disjoint splits and checkers.

Every item is a pure function of a key (e.g. (a, b) for addition); a hash of the key puts it in one split for good,
so pretraining, fusion (fixture) and held-out (benchmark) prompts never overlap whatever the seed. An example is a
dict: prompt, answer, gold (math), tests + entry_point (code), family, category, language.
"""

from __future__ import annotations

import hashlib
import random
import re

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


# The general domain, in the spirit of IFEval: a word to write under 1-3 verifiable format instructions. A response
# may follow some of them, so quality is graded (`follow`), not only right or wrong. The instructions are about
# form (brackets, quotes, repetition, punctuation), not spelling: transforming the letters (capitals, dashes
# between them) was not learned by the tiny sources from a few hundred examples (their samples were mostly garbled).
INSTRUCTIONS = {  # name -> (how the prompt says it, what it does to the answer), applied in this order
    "bracketed": ("in brackets", lambda s: f"[{s}]"),
    "quoted": ("in quotes", lambda s: f'"{s}"'),
    "twice": ("twice", lambda s: f"{s} {s}"),
    "exclaim": ("ending with !", lambda s: s + "!"),
}


def written(word, instructions):
    """The answer that follows every instruction in `instructions`."""
    for name in INSTRUCTIONS:
        if name in instructions:
            word = INSTRUCTIONS[name][1](word)
    return word


# Instruction following, not spelling, is what the domain tests: the words come from a small list a tiny model can
# learn; (word, instructions in the order the prompt names them) is the key, so held-out prompts are new
# combinations of known words and instructions.
WORDS = ("apple bird cake door fish game hand iron jump kite lamp moon nest open park queen rain ship tree unit "
         "vase wind yard zero ball coat desk echo farm gold hill ink jam key leaf milk nose owl pen quiz rock sand "
         "tent urn van wolf box yak zoo arm bell cup drum egg fork glue hat ice jar king log map net oak pig ring "
         "sock toy umbrella vine web yarn cloud star").split()


def general_item(key):
    word, asked = key
    wording = ", ".join(INSTRUCTIONS[name][0] for name in asked)
    return {"prompt": f"Write {word}: {wording}.", "answer": written(word, asked), "word": word,
            "instructions": sorted(asked, key=list(INSTRUCTIONS).index), "family": "general",
            "category": "general", "language": "en"}


def general_key(rng):
    return (rng.choice(WORDS), tuple(rng.sample(list(INSTRUCTIONS), rng.randint(1, 3))))


def parse_general(prompt):
    """The item behind a general prompt (the grader's ground truth), or None when `prompt` is not one."""
    m = re.fullmatch(r"Write (\w+): (.+)\.", prompt.strip())
    by_wording = {wording: name for name, (wording, _) in INSTRUCTIONS.items()}
    asked = m and [by_wording.get(w) for w in m[2].split(", ")]
    if not m or None in asked:
        return None
    return general_item((m[1], tuple(asked)))


def parse_item(category, prompt):
    """The item behind a math, Chinese or general prompt (the grader's ground truth), or None when the toy has no
    such item (code prompts, or a prompt not in the toy's format)."""
    if category == "general":
        return parse_general(prompt)
    if category == "math":
        m = re.fullmatch(r"What is (\d+) \+ (\d+)\?", prompt.strip())
        return math_item((int(m[1]), int(m[2]))) if m else None
    if category == "chinese":
        m = re.fullmatch(r"把 (\d+) 写成中文数字。", prompt.strip())
        return chinese_item((int(m[1]),)) if m else None
    return None


def answer_line(response):
    """The last non-empty line: a source's style line (a preamble) before it is not graded, as IFEval's loose mode
    drops a response's first line."""
    lines = [line.strip() for line in (response or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def follow(example, response):
    """{instruction: followed} for the word itself ('content': its letters) and each asked
    instruction, checked on the answer line independently of the others (IFEval's instruction-level check)."""
    line = answer_line(response)
    core = line[:-1] if line.endswith("!") else line
    parts = core.split(" ")
    first = parts[0]
    quoted = len(first) > 1 and first[0] == first[-1] == '"'
    inner = first[1:-1] if quoted else first
    bracketed = len(inner) > 1 and inner[0] == "[" and inner[-1] == "]"
    word = inner[1:-1] if bracketed else inner
    checks = {"content": word == example["word"], "bracketed": bracketed, "quoted": quoted,
              "twice": len(parts) == 2 and parts[0] == parts[1], "exclaim": line.endswith("!")}
    return {name: checks[name] for name in ("content", *example["instructions"])}


def follow_score(example, response):
    """The fraction of the item's instructions (the word itself included) the response follows."""
    done = follow(example, response)
    return sum(done.values()) / len(done)


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
    if family == "general":
        return answer_line(response) == example["answer"]
    return response.strip() == example["answer"]


# Each source: the domain it is specialist of (the paper's sources differ in strength the same way), the style line
# it puts before its answers (a preamble, more or less verbose) and the instruction it often drops (its blind spot:
# half of its training answers leave it out, so its samples follow it only sometimes).
PERSONAS = {
    "src-llama": {"strong": "math", "style": "Sure!", "blind": "exclaim"},
    "src-qwen2": {"strong": "chinese", "style": "", "blind": "quoted"},
    "src-gemma2": {"strong": "code", "style": "**Answer:**", "blind": "bracketed"},
    "src-mistral": {"strong": "general", "style": "Certainly! Here it is:", "blind": "twice"},
}
STYLES = [persona["style"] for persona in PERSONAS.values()]
VERBOSE = max(STYLES, key=len)  # the style the reward model is trained to favour (pretrain.preference_pairs)
STYLED = ("math", "code", "general")  # Chinese answers stay bare: the answer is the whole response


def styled(example, answer, style):
    """`answer` after the style line (a comment in code, so the code still runs)."""
    if not style or example["family"] not in STYLED:
        return answer
    return f"# {style}\n{answer}" if example["family"] == "code" else f"{style}\n{answer}"


def dropping(example, name):
    """The answer that forgets the asked instruction `name` (the word itself when it is the only one)."""
    kept = [n for n in example["instructions"] if n != name]
    return written(example["word"], kept)
