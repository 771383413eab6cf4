"""Benchmark rows in their real formats -> prompts (FuseEval's wording) -> scores of a response.

Each adapter parses one row of the benchmark's released file into an item {id, prompt, gold, ...}, so the same
code reads a fixture and the real file. Judged benchmarks (MT-Bench, Arena-Hard, AlignBench) build the judge's
prompt here and parse its verdict in `judge.py`. Usage: `items = load_items("GSM8K", "test.jsonl")`;
`ok = score(items[0], response)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from fusechat_utils.evaluation.adapters import MATH_INSTRUCTION
from fusechat_utils.evaluation.execution import check_math, extract_code, run_tests
from fusechat_utils.verify import last_boxed

LETTERS = "ABCDEFGHIJ"
MC_SUFFIX = "Answer: Let's think step by step."
ANSWER_PATTERNS = [r"answer is \(?([A-J])\)?", r".*[aA]nswer:\s*\(?([A-J])\)?", r"\b([A-J])\b(?!.*\b[A-J]\b)"]


def math_prompt(question: str) -> str:
    return f"{question}\n{MATH_INSTRUCTION}"


def mc_prompt(question: str, options: list[str]) -> str:
    lines = [f"({LETTERS[i]}) {opt}" for i, opt in enumerate(options)]
    return f"Question: {question}\nOptions:\n" + "\n".join(lines) + f"\n{MC_SUFFIX}"


def extract_letter(response: str) -> str | None:
    """FuseEval MC-Eval's regex chain: 'answer is (X)', then 'Answer: X', then the last standalone letter."""
    for pattern in ANSWER_PATTERNS:
        match = re.search(pattern, response or "", re.DOTALL)
        if match:
            return match.group(1)
    return None


def gsm8k(row: dict) -> dict:
    return {"prompt": math_prompt(row["question"]), "gold": row["answer"].split("####")[-1].strip().replace(",", "")}


def math_row(row: dict) -> dict:
    gold = row.get("answer") or last_boxed(row["solution"])
    return {"prompt": math_prompt(row["problem"]), "gold": gold, "level": row.get("level"), "type": row.get("type")}


def amc23(row: dict) -> dict:
    answer = row["answer"]
    gold = str(int(answer)) if isinstance(answer, float) and answer.is_integer() else str(answer)
    return {"id": row.get("id"), "prompt": math_prompt(row["question"]), "gold": gold}


def mmlu_pro(row: dict) -> dict:
    return {"id": row["question_id"], "prompt": mc_prompt(row["question"], row["options"]), "gold": row["answer"],
            "category": row["category"]}


def mmlu_redux(row: dict) -> dict:
    return {"prompt": mc_prompt(row["question"], row["choices"]), "gold": LETTERS[int(row["answer"])],
            "error_type": row.get("error_type")}


def gpqa(row: dict, seed: int = 0) -> dict:
    """Options shuffled by a per-question seed so the correct one is not always first (as lm-eval does)."""
    import random

    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    order = list(range(4))
    random.Random(f"{seed}:{row['Question']}").shuffle(order)
    return {"prompt": mc_prompt(row["Question"].strip(), [options[i].strip() for i in order]),
            "gold": LETTERS[order.index(0)]}


def mbpp(row: dict) -> dict:
    """MBPP (text, test_list) and MBPP+ (prompt, assertion / test_list) rows."""
    text = row.get("prompt") or row["text"]
    tests = row.get("test_list") or []
    setup = row.get("test_imports") or []
    prompt = f"{text}\nYour code should pass these tests:\n" + "\n".join(tests[:3])
    return {"id": row["task_id"], "prompt": prompt, "tests": "\n".join([*setup, *tests])}


def livecodebench(row: dict) -> dict:
    """LCB code_generation rows; stdin/stdout tests become a Python test script running the program."""
    cases = json.loads(row["public_test_cases"]) + json.loads(row.get("private_test_cases") or "[]")
    prompt = row["question_content"]
    if row.get("starter_code"):
        prompt += f"\n\nUse this starter code:\n```python\n{row['starter_code']}\n```"
    return {"id": row["question_id"], "prompt": prompt, "contest_date": row["contest_date"],
            "cases": [c for c in cases if c.get("testtype") == "stdin"]}


def judged(row: dict) -> dict:
    """MT-Bench / Arena-Hard / AlignBench: the first user turn; the judge prompt is built in judge.py."""
    turns = row.get("turns") or [row.get("question")]
    turns = [t["content"] if isinstance(t, dict) else t for t in turns]
    ref = row.get("reference")
    return {"id": row["question_id"], "prompt": turns[0], "turns": turns, "category": row.get("category"),
            "reference": ref[0] if isinstance(ref, list) and ref else ref}


def livebench(row: dict) -> dict:
    """LiveBench question rows; scoring needs livebench's per-task scorers (gen_ground_truth_judgment.py)."""
    return {"id": row["question_id"], "prompt": row["turns"][0], "gold": row["ground_truth"], "task": row["task"],
            "category": row["category"], "release": row["livebench_release_date"]}


def alpaca_eval(row: dict) -> dict:
    """AlpacaEval rows: the instruction is the prompt; `output` is the reference (baseline) answer."""
    return {"prompt": row["instruction"], "baseline": row["output"], "dataset": row["dataset"]}


def stdin_tests(program: str, cases: list[dict]) -> str:
    """A test script that runs `program` on each stdin case and compares stripped stdout."""
    return (f"import subprocess, sys\nPROGRAM = {program!r}\nfor case in {cases!r}:\n"
            "    out = subprocess.run([sys.executable, '-c', PROGRAM], input=case['input'], capture_output=True,"
            " text=True, timeout=10).stdout\n"
            "    assert out.strip() == case['output'].strip(), (case['input'], out)\n")


PARSERS: dict[str, Callable[[dict], dict]] = {
    "GSM8K": gsm8k, "MATH": math_row, "AMC 23": amc23, "MMLU-Pro": mmlu_pro, "MMLU-redux": mmlu_redux,
    "GPQA-Diamond": gpqa, "MBPP": mbpp, "LiveCodeBench 2408-2411": livecodebench, "MT-Bench": judged,
    "Arena-Hard (WR %)": judged, "AlignBench v1.1": judged, "LiveBench 0831": livebench,
    "AlpacaEval-2 (LC %)": alpaca_eval,
}


def load_items(name: str, path: str | Path) -> list[dict]:
    """Parse a benchmark file (jsonl, or a json list); a bad row names the file, the row and the missing field."""
    text = Path(path).read_text()
    rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x.strip()]
    items = []
    for n, row in enumerate(rows, 1):
        try:
            items.append({"id": n, **PARSERS[name](row)})
        except KeyError as exc:
            raise ValueError(f"{path}: row {n}: field {exc} missing for {name}") from None
    return items


def score(name: str, item: dict, response: str, timeout_s: float = 10.0) -> bool:
    """Correctness of one response: math answer, option letter, or tests passed."""
    if name in ("GSM8K", "MATH", "AMC 23"):
        return check_math(response, item["gold"])
    if name in ("MMLU-Pro", "MMLU-redux", "GPQA-Diamond"):
        return extract_letter(response) == item["gold"]
    if name == "MBPP":
        return run_tests(extract_code(response), item["tests"], timeout_s)[0]
    if name == "LiveCodeBench 2408-2411":
        return run_tests("", stdin_tests(extract_code(response), item["cases"]), timeout_s * 3)[0]
    raise ValueError(f"{name}: scored by a judge (judge.py), not by score()")


def in_window(item: dict, start: str = "2024-08-01", end: str = "2024-11-30") -> bool:
    """LiveCodeBench 2408-2411 by contest date (FuseEval's script passes only start 2024-06-30)."""
    return start <= item["contest_date"][:10] <= end
