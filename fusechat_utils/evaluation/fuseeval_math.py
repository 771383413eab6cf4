"""GSM8K, MATH (MATH-500 here) and AMC 23 as FuseEval's Math-Eval runs them: load, prompt, decoding, grading.

FuseEval (FuseChat-3.0/FuseEval/Math-Eval, adapted from QwenLM/Qwen2.5-Math) sends a fixed zero-shot template per
model family (`<family>-math-cot`, the whole raw prompt), decodes greedily (2,048 new tokens), takes the last
`\\boxed{}` of the output (else the text after "the answer is", else the last number) and compares it with the gold
answer by `math_equal`. The facts used here are in shared/data/benchmarks/fuseeval_settings.md, section 2.

Differs from FuseEval, and why:
- Equivalence: FuseEval's `math_equal` (Qwen2.5-Math `grader.py`: its own `strip_string` plus sympy, with
  process-based timeouts) is replaced by `math-verify` (pinned in the project; a maintained library for exactly
  this check). The extraction is ours, written from the notes, with a light normalisation (thousands separators,
  `$`, a whole `\\text{}`, unit words after a number) instead of Qwen's long `strip_string`; math-verify does the rest.
  A gold in another base (`52_8`) is compared as text, since math-verify drops the subscript. Scores can differ
  from FuseEval's on a few borderline answers (units, intervals, unordered sets).
- MATH gold: FuseEval's `math` set is the full 5,000-problem MATH test with gold = the last box of `solution`;
  the kit ships MATH-500, whose rows carry the curated `answer`, used when present (else the last box).
- FuseEval re-runs an output that has no "boxed" and ends in a code fence through its Python executor (up to 4
  rounds, as its `*-math-cot` types are not `cot`/`pal`); this module does not generate, so that loop is not done.
- Only the data fields FuseEval reads for gsm8k/math/amc23 are handled; other Math-Eval sets are out of scope.

Usage: `items = load("data/benchmarks/math500/test.jsonl"); prompt = build_prompt(items[0], "qwen25")`,
generate with `decoding("qwen25")`, then `grade(items[0], text)["correct"]`.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import families
from fusechat_utils.evaluation.families import FAMILIES  # noqa: F401 - FuseEval's three, for callers

# FuseEval Math-Eval/utils.py PROMPT_TEMPLATES (input_template of `<family>-math-cot`), exact strings.
TEMPLATES = {
    "llama3": ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nPlease reason step by step, and put "
               "your final answer within \\boxed{{}}.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{input}"
               "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
    "qwen25": ("<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{{}}."
               "<|im_end|>\n<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"),
    "gemma2": ("<start_of_turn>user\n{input}\nPlease reason step by step, and put your final answer within "
               "\\boxed{{}}.<end_of_turn>\n<start_of_turn>model\n"),
}

# FuseEval Math-Eval/math_eval.py: stop words and ids chosen by the model path ("qwen", "llama", "gemma").
STOPS = {
    "qwen25": (["<|im_end|>", "<|endoftext|>"], [151645, 151643]),
    "llama3": (["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"], [128001, 128008, 128009]),
    "gemma2": (["<eos>", "<end_of_turn>"], [1, 107]),
}

QUESTION_KEYS = ("question", "problem", "Question", "input")  # FuseEval parse_question's order
NUMBER = re.compile(r"-?\d*\.?\d+")
THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
SPACING = re.compile(r"\\\\|\\[!,;: ]")
BASE = re.compile(r"(?<=[0-9A-Z])_\{?(\d+)\}?$")  # `52_8`, `4210_{5}`: a number written in another base
NUMBER_THEN_WORDS = re.compile(r"^(\\?\$?-?[\d,]*\.?\d+)\s+[A-Za-z][A-Za-z ]*$")


# ----------------------------------------------------------------------------------------------------------------
# loading


def load(path: str | Path, dataset: str | None = None) -> list[dict]:
    """Items {id, dataset, question, gold, solution} from a Math-Eval jsonl file.

    `dataset` ("gsm8k", "math" or "amc23") is detected from the first row's keys when not given: a `solution`
    (or `gt_cot`) means MATH, a numeric `answer` AMC 23, a text `answer` GSM8K (its "#### N" line).
    """
    path = Path(path)
    rows = _read_jsonl(path)
    if not rows:
        raise UserError(f"{path}: no rows")
    dataset = dataset or _detect(rows[0][1])
    if dataset not in PARSERS:
        raise UserError(f"{path}: unknown math dataset {dataset!r} (expected one of {sorted(PARSERS)})")
    items = []
    for line_no, row in rows:
        fail = _row_error(path, line_no)
        item = PARSERS[dataset](row, line_no, fail)
        item["question"] = _question(row, item["gold"], fail)
        items.append(item)
    return items


def _row_error(path: Path, line_no: int):
    def fail(field: str, why: str) -> UserError:
        return UserError(f"{path}: row {line_no}: field {field!r}: {why}")
    return fail


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from err
    rows = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: row {line_no}: not valid JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {line_no}: expected a JSON object")
        rows.append((line_no, row))
    return rows


def _detect(row: dict) -> str:
    if "solution" in row or "gt_cot" in row:
        return "math"
    if isinstance(row.get("answer"), (int, float)) and not isinstance(row.get("answer"), bool):
        return "amc23"
    return "gsm8k"


def _text_field(row: dict, field: str, fail) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise fail(field, "missing or not a non-empty string")
    return value


def _gsm8k(row: dict, line_no: int, fail) -> dict:
    answer = _text_field(row, "answer", fail)
    if answer.count("####") != 1:
        raise fail("answer", 'expected one "#### <final answer>" line')
    rationale, final = answer.split("####")
    return {"id": str(row.get("idx", line_no - 1)), "dataset": "gsm8k", "gold": normalize(final),
            "solution": rationale.strip()}


def _math(row: dict, line_no: int, fail) -> dict:
    # Qwen2.5-Math-style rows may carry the worked solution as `gt_cot` (FuseEval then grades against its box).
    field = "solution" if "solution" in row or "gt_cot" not in row else "gt_cot"
    solution = _text_field(row, field, fail)
    gold = row.get("answer") if field == "solution" else None
    if gold is None:
        gold = last_boxed(solution)
        if gold is None:
            raise fail(field, "no answer field and no \\boxed{} in the solution")
    elif not isinstance(gold, str) or not gold.strip():
        raise fail("answer", "not a non-empty string")
    return {"id": str(row.get("unique_id", row.get("idx", line_no - 1))), "dataset": "math", "gold": normalize(gold),
            "solution": solution}


def _amc23(row: dict, line_no: int, fail) -> dict:
    answer = row.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise fail("answer", "expected a number (e.g. 27.0)")
    gold = str(int(answer)) if float(answer).is_integer() else repr(float(answer))
    return {"id": str(row.get("id", line_no - 1)), "dataset": "amc23", "gold": gold, "solution": None}


PARSERS = {"gsm8k": _gsm8k, "math": _math, "amc23": _amc23}


def _question(row: dict, gold: str, fail) -> str:
    """FuseEval parse_question: the first present key, a (Yes or No)/(True or False) hint, then .strip().

    The final full `.strip()` is in parse_question's source (the settings notes only mention the template's
    `.strip(" ")`); no real GSM8K or MATH-500 question has outer whitespace, so it rarely matters."""
    key = next((k for k in QUESTION_KEYS if k in row), None)
    if key is None or not isinstance(row[key], str) or not row[key].strip():
        raise fail("question", f"none of {', '.join(QUESTION_KEYS)} holds a non-empty string")
    question = row[key]
    if gold.lower() in ("true", "false"):
        question += " (True or False)"
    if gold.lower() in ("yes", "no"):
        question += " (Yes or No)"
    return question.strip()


# ----------------------------------------------------------------------------------------------------------------
# prompting and decoding


SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."  # the templates' instruction


def build_prompt(item: dict, family: str, tokenizer=None) -> str:
    """The whole raw prompt: FuseEval's `<family>-math-cot` template, zero-shot (the tokenizer is not used); the
    chat_template family: the same instruction as a system turn of the model's own template."""
    families.check(family, "Math-Eval")
    if family == families.NATIVE:
        return families.system_then_user(tokenizer, SYSTEM, item["question"])
    return TEMPLATES[family].format(input=item["question"]).strip(" ")


def decoding(family: str) -> dict:
    """FuseEval's Math-Eval sampling: greedy, top_p forced to 1, 2,048 new tokens, one sample, 4,096 context."""
    families.check(family, "Math-Eval")
    stop, stop_ids = STOPS.get(family, ([], []))  # chat_template: the model's own EOS (its generation config)
    return {"temperature": 0.0, "top_p": 1.0, "max_tokens": 2048, "n": 1, "stop": list(stop),
            "stop_token_ids": list(stop_ids), "max_model_len": 4096}


# ----------------------------------------------------------------------------------------------------------------
# extraction


def _braced(text: str, start: int) -> str | None:
    """Content of the {...} group opening at text[start], nested braces kept; None if it never closes."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    return None


def last_boxed(text: str) -> str | None:
    """What follows the last "boxed": its brace group, or (for `\\boxed 5$`) the text up to the next `$`."""
    at = text.rfind("boxed")
    if at < 0:
        return None
    rest = text[at + len("boxed"):]
    if rest.startswith("{"):
        braced = _braced(rest, 0)
        return rest[1:] if braced is None else braced  # an output cut off inside the box: keep what is there
    return rest.split("$")[0].strip()


def extract_answer(text: str) -> str | None:
    """The final answer of a response, by the rules of FuseEval's Math-Eval parser (see the module docstring).

    The last `boxed`; else the text after the last "he answer is", "final answer is" or "答案是"; else the last
    number (commas dropped). Then newlines go, a leading ':' and a trailing '.' and '/' are cut, and `normalize`
    runs. None when nothing is left.
    """
    if "boxed" in text:
        pred = last_boxed(text) or ""
    else:
        for marker in ("he answer is", "final answer is", "答案是"):
            if marker in text:
                pred = text.split(marker)[-1].strip()
                break
        else:
            numbers = NUMBER.findall(text.replace(",", ""))
            pred = numbers[-1] if numbers else ""
    pred = re.sub(r"\n\s*", "", pred)
    pred = pred.removeprefix(":").removesuffix(".").removesuffix("/")
    pred = normalize(pred)
    return pred or None


def normalize(answer: str) -> str:
    """A light clean-up ahead of math-verify: outer `$`, a whole-answer `\\text{}`, plain unit words after a number
    ("18 dollars"; math-verify handles `18\\text{ dollars}` itself), thousands separators."""
    s = answer.strip().strip("$").strip()
    s = SPACING.sub(lambda m: m.group() if m.group() == "\\\\" else "", s)  # `1\\,000`; keeps `\\\\` rows
    if s.startswith("\\text{") and _braced(s, 5) == s[6:-1]:
        s = s[6:-1]
    s = s.removesuffix("^\\circ").removesuffix("^{\\circ}")
    s = NUMBER_THEN_WORDS.sub(r"\1", s)
    if THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    return s.strip()


# ----------------------------------------------------------------------------------------------------------------
# grading


def equivalent(pred: str, gold: str) -> bool:
    """Same string after `normalize`, else math-verify's symbolic/numeric check (gold first, as it expects).
    A gold in another base (`52_8`) takes `52_8`, `52_{8}` or `52`, compared as text."""
    pred, gold = normalize(pred), normalize(gold)
    if BASE.search(gold):
        # math-verify drops subscripts, so `52_9` would equal `52_8`; the digits are compared as text instead.
        return BASE.sub(r"_\1", pred.replace(" ", "")) in {BASE.sub(r"_\1", gold), BASE.sub("", gold)}
    return pred == gold or math_verify_equal(pred, gold)


def math_verify_equal(pred: str, gold: str) -> bool:
    """math-verify on both answers, each read as a boxed LaTeX expression."""
    from math_verify import parse, verify

    # math-verify's timeouts use SIGALRM, which only works in the main thread.
    limit = 5 if threading.current_thread() is threading.main_thread() else None
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=limit)
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=limit)
    return bool(gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=limit))


def grade(item: dict, response: str) -> dict:
    """{correct, pred, gold}: the response's extracted answer against the item's gold."""
    pred = extract_answer(response or "")
    return {"correct": pred is not None and equivalent(pred, item["gold"]), "pred": pred, "gold": item["gold"]}


def oracle_response(item: dict) -> str:
    """The reference worked solution ending in the gold answer boxed (MATH's own solution keeps its boxes)."""
    if item["dataset"] == "math" and "boxed" in item["solution"]:
        return item["solution"]
    # GSM8K's <<calc>> annotations are tool markup a chat model would not write.
    reasoning = re.sub(r"<<[^>]*>>", "", item["solution"] or "")
    return f"{reasoning}\nThe final answer is $\\boxed{{{item['gold']}}}$.".lstrip()


def wrong_response(item: dict) -> str:
    """A well-formed wrong answer close to the gold: its first integer plus one (`\\frac{2}{3}` -> `\\frac{3}{3}`),
    or a fixed number for a gold without digits."""
    first = re.search(r"\d+", item["gold"])
    wrong = "-987654321"
    if first:
        wrong = f"{item['gold'][:first.start()]}{int(first.group()) + 1}{item['gold'][first.end():]}"
    return f"Working through the problem step by step.\nThe final answer is $\\boxed{{{wrong}}}$."
