"""The toy benchmarks: held-out toy tasks per domain (`outputs/toy_world/benchmarks/<family>.jsonl`).

Rows: prompt, answer, gold, tests, entry_point, family, category, language. Scoring per category: math accuracy
(math-verify on `gold`), code pass@1 (the prompt's tests through the sandbox), Chinese exact match against `answer`.
General items (IFEval-like: a word under 1-3 verifiable instructions) are graded as IFEval grades: prompt-level
strict (the answer line is exactly right: `toy_general`) and instruction-level (each instruction checked on its
own: `toy_general_if`, over all instructions of all items). The win rate against the base (reward model as judge)
is in `winrate.py`.
Usage: `items = load_toy_benchmarks(folder)`; `rows = score_toy(items, responses)`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fusechat_utils.evaluation.execution import check_math, extract_code
from fusechat_utils.toy import tasks

REQUIRED = ("prompt", "category")
METRIC = {"math": "accuracy", "code": "pass@1", "general": "prompt_strict", "chinese": "exact_match",
          "general_if": "instruction_level"}


def load_toy_benchmarks(folder: str | Path) -> list[dict]:
    """All rows of every `<family>.jsonl` in `folder`; a bad row names its file, line and field."""
    files = sorted(Path(folder).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no toy benchmark files (*.jsonl) in {folder}; build them with `fusechat toy-world`")
    rows = []
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            for key in REQUIRED:
                if not row.get(key):
                    raise ValueError(f"{path}: line {n}: field {key!r} is missing or empty")
            if row["category"] not in METRIC:
                raise ValueError(f"{path}: line {n}: field 'category' is {row['category']!r}, not one of {list(METRIC)}")
            rows.append({**row, "family": row.get("family") or path.stem})
    return rows


def normalize(text: str) -> str:
    """Case, surrounding whitespace and trailing punctuation do not count (ASCII and CJK full stops)."""
    return re.sub(r"\s+", " ", (text or "").strip().lower()).rstrip(".!。！ ")


def graded_per_instruction(item: dict) -> bool:
    return item["category"] == "general" and item.get("instructions") is not None


def score_item(item: dict, response: str, followed: dict | None = None) -> tuple[bool, str]:
    """Math, general and Chinese items; code items are run in a batch by `score_toy`. `followed`: a general item's
    `tasks.follow` verdicts when the caller has them already."""
    if item["category"] == "math":
        gold = item.get("gold") if item.get("gold") is not None else item.get("answer")
        ok = check_math(response, str(gold))
        return ok, "correct" if ok else "wrong_answer"
    if graded_per_instruction(item):
        followed = tasks.follow(item, response) if followed is None else followed
        ok = tasks.check(item, response)
        return ok, "match" if ok else "missed: " + ",".join(k for k, v in followed.items() if not v)
    ok = normalize(response) == normalize(str(item.get("answer", "")))
    return ok, "match" if ok else "no_match"


def score_toy(items: list[dict], responses: list[str], timeout_s: float = 10.0, workers: int = 2) -> list[dict]:
    """One row per item: benchmark (toy_<category>), family, prompt, response, correct, reason."""
    from fusechat_utils.verify import run_code_many

    if len(items) != len(responses):
        raise ValueError(f"toy benchmarks: {len(items)} items but {len(responses)} responses")
    verdicts: list[tuple[bool, str] | None] = [None] * len(items)
    code = [i for i, it in enumerate(items) if it["category"] == "code" and it.get("tests")]
    ran = run_code_many([(extract_code(responses[i]), items[i]["tests"]) for i in code], timeout_s, workers)
    for i, result in zip(code, ran):
        verdicts[i] = (bool(result.passed), str(result.reason))
    rows = []
    for n, (item, response) in enumerate(zip(items, responses)):
        followed = tasks.follow(item, response) if graded_per_instruction(item) else None
        if verdicts[n] is None:
            verdicts[n] = (False, "no_tests") if item["category"] == "code" else score_item(item, response, followed)
        ok, reason = verdicts[n]
        row = {"benchmark": f"toy_{item['category']}", "family": item["family"], "prompt": item["prompt"],
               "response": response, "correct": ok, "reason": reason}
        if followed is not None:
            row["followed"] = followed
        rows.append(row)
    return rows
