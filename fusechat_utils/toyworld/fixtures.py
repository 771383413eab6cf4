"""Fixture datasets: the toy tasks' fuse-split prompts in the 8 source datasets' real column schemas.

Usage: `counts = write_fixtures(folder, per_family=600, seed=0)` writes `<owner>__<name>.jsonl` per dataset.
Rows the prompt filters are meant to DROP (per dataset, `N_BAD` = 5 of each kind):
- UltraFeedback: 5 math prompts (source "flan_v2_cot") and 5 code prompts (source "flan_v2_p3", a code task);
  5 duplicates (same instruction, other case/whitespace).
- Magpie-Pro-DPO-100K-v0.1 and Magpie-Qwen2-Pro-200K-Chinese: 5 task_category "Math" and 5 "Coding & Debugging"
  rows each; 5 duplicates each.
- HelpSteer2: 2 rows per prompt (real: several responses per prompt), so prompt-level dedup halves it; no others.
- leetcode: 5 rows whose "**Example**" blocks do not parse (no Input/Output lines), so no tests can be derived.
- self-oss-instruct: 5 rows whose response has no assert tests.
- alpaca_gpt4_zh: 5 duplicates (whitespace variants).
"""

from __future__ import annotations

import hashlib
import random

from fusechat_utils.io import write_jsonl
from fusechat_utils.toyworld import tasks

N_BAD = 5
_ANNOT = {"instruction_following": {"Rating": "5", "Rationale": "Follows the instruction."},
          "honesty": {"Rating": "5", "Rationale": "Confident and correct."},
          "truthfulness": {"Type": ["0"], "Rationale": "No hallucination.", "Rating": "5",
                           "Rationale For Rating": "Accurate."},
          "helpfulness": {"Type": ["1"], "Rationale": "Correct.", "Rating": "5", "Rationale For Rating": "Good."}}


def _uid(text: str) -> str:
    digest = hashlib.sha1(text.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def ultrafeedback(ex: dict, source: str = "evol_instruct") -> dict:
    completion = {"model": "toy-src", "principle": "helpfulness", "custom_system_prompt": "",
                  "response": ex["answer"], "annotations": _ANNOT}
    return {"source": source, "instruction": ex["prompt"], "models": ["toy-src"], "correct_answers": [ex["answer"]],
            "incorrect_answers": [], "completions": [completion]}


def magpie(ex: dict, category: str = "Information seeking", zh: bool = False) -> dict:
    row = {"uuid": _uid(ex["prompt"] + category), "instruction": ex["prompt"],
           "gen_input_configs": {"temperature": 1.0, "top_p": 1.0}, "intent": "The user wants a short answer.",
           "knowledge": "Basic string and number handling.", "difficulty": "easy", "input_quality": "good",
           "quality_explanation": "The query is clear.", "task_category": category, "input_length": len(ex["prompt"])}
    if zh:
        return {**row, "model": "Qwen/Qwen2-72B-Instruct", "response": ex["answer"],
                "conversations": [{"from": "human", "value": ex["prompt"]}, {"from": "gpt", "value": ex["answer"]}],
                "other_task_category": [], "language": "ZH"}
    gen = {"prompt": ex["prompt"], "temperature": 0.8, "top_p": 1.0, "repetition_penalty": 1.0, "max_tokens": 4096,
           "stop_tokens": ["<|eot_id|>"], "output_generator": "meta-llama/Meta-Llama-3-70B-Instruct", "engine": "vllm"}
    return {**row, "responses": [ex["answer"], ex["answer"][::-1]], "gen_response_configs": gen,
            "rewards_armorm": [{"score": 0.2}, {"score": 0.05}]}


def helpsteer2(ex: dict) -> list[dict]:
    good = {"prompt": ex["prompt"], "response": ex["answer"], "helpfulness": 4, "correctness": 4, "coherence": 4,
            "complexity": 1, "verbosity": 1}
    return [good, {**good, "response": ex["answer"][::-1] + "?", "helpfulness": 1, "correctness": 0}]


def openmath(ex: dict) -> dict:
    return {"problem": ex["prompt"], "generated_solution": ex["answer"], "expected_answer": ex["gold"],
            "problem_source": "augmented_gsm8k"}


def leetcode(ex: dict, i: int, broken: bool = False) -> dict:
    var = ex["answer"].split("(")[1].split(")")[0]
    calls = [t.removeprefix(f"assert {ex['entry_point']}(").split(") == ") for t in ex["tests"].splitlines()[:3]]
    examples = "".join(f"**Example {k}:**\n\n**Input:** {var} = {arg}\n**Output:** {out}\n\n"
                       for k, (arg, out) in enumerate(calls, 1))
    if broken:
        examples = "**Example 1:**\n\nSee the figure above.\n\n"
    content = f"{ex['prompt']}\n\n{examples}**Constraints:**\n\n* `-100 <= {var} <= 100`"
    return {"id": i, "slug": f"toy-function-{i}", "title": f"Toy Function {i}", "difficulty": "Easy",
            "content": content, "java": "", "c++": "", "javascript": "",
            "python": f"```python\n{ex['answer']}\n```\nApply the two operations in order."}


def self_oss(ex: dict, i: int, no_tests: bool = False) -> dict:
    tests = "" if no_tests else f"\n\n### Tests\n```python\n{ex['tests']}\n```"
    return {"instruction": ex["prompt"], "response": f"### Response\n```python\n{ex['answer']}\n```{tests}",
            "prompt": ex["prompt"], "fingerprint": None, "sha1": hashlib.sha1(ex["prompt"].encode()).hexdigest(),
            "seed": ex["answer"], "concepts": ["arithmetic", "function definition"], "id": i}


def _dup(row: dict, key: str) -> dict:
    return {**row, key: "  " + row[key].upper() + " "}


def _general(rows: list[dict], bad_math: list[dict], bad_code: list[dict]) -> dict[str, list[dict]]:
    third = len(rows) // 3
    uf = [ultrafeedback(e) for e in rows[:third]]
    uf += [ultrafeedback(e, "flan_v2_cot") for e in bad_math] + [ultrafeedback(e, "flan_v2_p3") for e in bad_code]
    md = [magpie(e) for e in rows[third:2 * third]]
    md += [magpie(e, "Math") for e in bad_math] + [magpie(e, "Coding & Debugging") for e in bad_code]
    hs = [r for e in rows[2 * third:] for r in helpsteer2(e)]
    return {"openbmb__UltraFeedback": uf + [_dup(r, "instruction") for r in uf[:N_BAD]],
            "Magpie-Align__Magpie-Pro-DPO-100K-v0.1": md + [_dup(r, "instruction") for r in md[:N_BAD]],
            "nvidia__HelpSteer2": hs}


def _code(rows: list[dict]) -> dict[str, list[dict]]:
    half = len(rows) // 2
    lc = [leetcode(e, i + 1) for i, e in enumerate(rows[:half])]
    lc += [leetcode(e, 10_000 + i, broken=True) for i, e in enumerate(rows[:N_BAD])]
    so = [self_oss(e, i) for i, e in enumerate(rows[half:])]
    so += [self_oss(e, 10_000 + i, no_tests=True) for i, e in enumerate(rows[half:half + N_BAD])]
    return {"greengerong__leetcode": lc, "bigcode__self-oss-instruct-sc2-exec-filter-50k": so}


def _chinese(rows: list[dict], bad_math: list[dict], bad_code: list[dict]) -> dict[str, list[dict]]:
    half = len(rows) // 2
    al = [{"instruction": e["prompt"], "input": "", "output": e["answer"]} for e in rows[:half]]
    mz = [magpie(e, "Information seeking", zh=True) for e in rows[half:]]
    mz += [magpie(e, "Math", zh=True) for e in bad_math] + [magpie(e, "Coding & Debugging", zh=True) for e in bad_code]
    return {"llamafactory__alpaca_gpt4_zh": al + [_dup(r, "instruction") for r in al[:N_BAD]],
            "Magpie-Align__Magpie-Qwen2-Pro-200K-Chinese": mz + [_dup(r, "instruction") for r in mz[:N_BAD]]}


def write_fixtures(folder, per_family: int = 600, seed: int = 0) -> dict[str, int]:
    """Write the 8 fixture files from the fuse split; returns rows per file."""
    fuse = {fam: tasks.examples(fam, "fuse", per_family) for fam in tasks.FAMILIES}
    rng = random.Random(seed)
    bad_math, bad_code = rng.sample(fuse["arith"], N_BAD), rng.sample(fuse["code"], N_BAD)
    files = {**_general(fuse["rev"], bad_math, bad_code),
             "nvidia__OpenMathInstruct-2": [openmath(e) for e in fuse["arith"]],
             **_code(fuse["code"]), **_chinese(fuse["zhnum"], bad_math, bad_code)}
    for name, rows in files.items():
        write_jsonl(f"{folder}/{name}.jsonl", rows)
    return {name: len(rows) for name, rows in files.items()}
