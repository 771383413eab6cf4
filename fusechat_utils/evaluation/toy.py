"""The toy benchmarks: held-out toy tasks per domain (`outputs/toy_world/benchmarks/<family>.jsonl`).

Rows: prompt, answer, gold, tests, entry_point, family, category, language. Scoring per category: math accuracy
(math-verify on `gold`), code pass@1 (the prompt's tests through the sandbox), general/Chinese exact match against
`answer`. The instruction-following win rate (reward model judge) is in `winrate.py`.
Usage: `items = load_toy_benchmarks(folder)`; `rows = score_toy(items, responses)`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fusechat_utils.evaluation.execution import check_math, extract_code, run_tests

REQUIRED = ("prompt", "category")
METRIC = {"math": "accuracy", "code": "pass@1", "general": "exact_match", "chinese": "exact_match"}


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


def score_item(item: dict, response: str, timeout_s: float = 10.0) -> tuple[bool, str]:
    category = item["category"]
    if category == "math":
        gold = item.get("gold") if item.get("gold") is not None else item.get("answer")
        ok = check_math(response, str(gold))
        return ok, "correct" if ok else "wrong_answer"
    if category == "code":
        if not item.get("tests"):
            return False, "no_tests"
        return run_tests(extract_code(response), item["tests"], timeout_s)
    ok = normalize(response) == normalize(str(item.get("answer", "")))
    return ok, "match" if ok else "no_match"


def score_toy(items: list[dict], responses: list[str], timeout_s: float = 10.0) -> list[dict]:
    """One row per item: benchmark (toy_<category>), family, prompt, response, correct, reason."""
    rows = []
    for item, response in zip(items, responses, strict=True):
        ok, reason = score_item(item, response, timeout_s)
        rows.append({"benchmark": f"toy_{item['category']}", "family": item["family"], "prompt": item["prompt"],
                     "response": response, "correct": ok, "reason": reason})
    return rows
