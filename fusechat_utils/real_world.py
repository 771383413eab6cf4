"""The world of the SmolLM2 profile (params/smollm2/): real prompt rows in the source datasets' schemas, and ArmoRM's
stand-in, under `outputs/smollm2_world/`. Its target and sources are the real SmolLM2-135M-Instruct
(`fusechat fetch-model smollm2-135m-instruct`).

Prompts (`fixtures/`, read by 01 with `prompts_source: fixtures`), every row real:
- the real rows of tests/fixtures/real_samples/ as they are (UltraFeedback, Magpie-Pro-DPO, OpenMathInstruct-2,
  alpaca_gpt4_zh; their README there says what each is). Magpie's 5 rows are "Coding & Debugging" and 01's paper
  filter drops them from the general category, so general holds one prompt: no hub, no more real general rows;
- math: GSM8K test rows from `HELDOUT_GSM8K` on (07 reads GSM8K from row 0, so `eval_limit` must stay below it;
  `params/smollm2/` keeps it far below), written in OpenMathInstruct-2's columns: `problem` the question,
  `expected_answer` the number after `####`, `generated_solution` GSM8K's written solution;
- code: MBPP's train split (task ids 601-974; 07's MBPP+ holds test tasks 2-510, HumanEval is another set) in
  self-oss-instruct's columns: `instruction` MBPP's own prompt (text, then "Your code should pass these tests:" and
  the asserts, as Austin et al. 2021), `response` the reference code and its asserts in fenced blocks, from which
  01 takes the tests (code_tests.self_oss_tests). Tasks whose reference code holds more than imports and functions
  (a class the asserts use), whose first function is not the one the asserts call, or with setup code are left out.
The reward model (`models/reward`) is ArmoRM's stand-in (`chat_templates.stand_in_reward_model`): ArmoRM's
interface with random weights, so its rewards on general and Chinese prompts prefer nothing; math and code
responses are graded for real (gold answers, tests), which is what the profile's SFT and DPO learn from.
Built once: `world.json` records what it holds; a world of another `VERSION` is rebuilt.
Usage: `folder = build("outputs/smollm2_world")`.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

from fusechat_utils.io import read_json, read_jsonl, write_json, write_jsonl
from fusechat_utils.prompt_sources import DATASETS
from fusechat_utils.rehearsal_fixtures import REAL_SAMPLES

VERSION = 1
DEFAULT_DIR = "outputs/smollm2_world"
BENCHMARKS = Path(__file__).resolve().parents[1] / "data" / "benchmarks"
GSM8K = BENCHMARKS / "gsm8k" / "test.jsonl"
MBPP = BENCHMARKS / "mbpp" / "mbpp.jsonl"
HELDOUT_GSM8K = 1000  # GSM8K test rows 1000-1318 are prompts here; 07 may read rows 0-999
MBPP_TRAIN = range(601, 975)
REAL = ("UltraFeedback", "Magpie-Pro-DPO-100K-v0.1", "OpenMathInstruct-2", "alpaca_gpt4_zh")


def gsm8k_as_openmath(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        solution, _, answer = row["answer"].rpartition("####")
        out.append({"problem": row["question"], "generated_solution": solution.strip(),
                    "expected_answer": answer.strip().replace(",", ""), "problem_source": "gsm8k_test_heldout"})
    return out


def _called(assertion: str) -> str | None:
    found = re.match(r"assert\s+(?:not\s+)?\(?\s*(?:set\()?\s*(?:math\.isclose\()?\s*([A-Za-z_]\w*)\s*\(", assertion)
    return found.group(1) if found else None


def _only_function(code: str) -> str | None:
    """The name of the code's first function if it holds only imports and functions (no class or global the
    asserts could need that the prompt does not give), else None."""
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return None
    if not all(isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)) for node in body):
        return None
    return next((node.name for node in body if isinstance(node, ast.FunctionDef)), None)


def mbpp_as_self_oss(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        if row["task_id"] not in MBPP_TRAIN or row["test_setup_code"].strip():
            continue
        code = row["code"].replace("\r\n", "\n").replace("\t", "    ").strip()
        if {_called(t) for t in row["test_list"]} != {_only_function(code)}:
            continue
        tests = "\n".join(row["test_list"])
        out.append({"instruction": f"{row['text']} Your code should pass these tests:\n\n{tests}",
                    "response": f"```python\n{code}\n```\n\nTests:\n\n```python\n{tests}\n```",
                    "mbpp_task_id": row["task_id"]})
    return out


def write_fixtures(folder: Path) -> dict[str, int]:
    rows = {name: read_jsonl(REAL_SAMPLES / DATASETS[name].fixture_name) for name in REAL}
    rows["OpenMathInstruct-2"] += gsm8k_as_openmath(read_jsonl(GSM8K)[HELDOUT_GSM8K:])
    rows["self-oss-instruct-sc2-exec-filter-50k"] = mbpp_as_self_oss(read_jsonl(MBPP))
    for name, data in rows.items():
        write_jsonl(folder / DATASETS[name].fixture_name, data)
    return {name: len(data) for name, data in rows.items()}


def build(out_dir: str | Path = DEFAULT_DIR, force: bool = False) -> Path:
    """Fixtures and the reward stand-in under out_dir, unless a world of this VERSION is there already."""
    from fusechat_utils.chat_templates import stand_in_reward_model

    out = Path(out_dir)
    if not force and (out / "world.json").is_file() and read_json(out / "world.json").get("version") == VERSION:
        return out
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = write_fixtures(tmp / "fixtures")
    stand_in_reward_model(tmp / "models" / "reward")
    write_json(tmp / "world.json", {"version": VERSION, "fixtures": counts, "reward_model": "ArmoRM stand-in "
                                    "(random weights)", "gsm8k_rows_from": HELDOUT_GSM8K,
                                    "mbpp_task_ids": [MBPP_TRAIN.start, MBPP_TRAIN.stop - 1]})
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # a killed build never leaves a half world that looks finished
    return out
