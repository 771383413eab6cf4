"""Fixture files for FuseChat-3.0's 8 source datasets, in each dataset's real column schema, holding toy-task
prompts from the fusion split, plus the toy benchmarks (held-out split).

Rows the 01_prompts filters must drop, per dataset of `n` rows (counts are in the toy world's manifest):
- general sets (UltraFeedback, Magpie-Pro-DPO, HelpSteer2): n/10 math and n/10 code prompts (code_or_math);
  Magpie rows carry task_category "Math" / "Coding & Debugging" as the real sets do;
- Chinese sets: n/10 Chinese math and code prompts (code_or_math);
- HelpSteer2: every prompt twice with different responses (duplicate: the real set has several rows per prompt)
  and n/20 multi-turn prompts with `<extra_id_1>` turn markers (multi_turn);
- leetcode: n/10 problems whose examples don't parse (no_tests); self-oss: n/10 responses without asserts (no_tests);
- every set: n/20 case/whitespace variants of its own prompts (duplicate).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from pathlib import Path

from fusechat_utils.io import write_jsonl
from fusechat_utils.toy import tasks

MAGPIE_TAGS = {"general": "Editing", "math": "Math", "code": "Coding & Debugging"}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def _ultrafeedback(ex: dict, rng) -> dict:
    completion = {"model": "toy", "principle": "helpfulness", "custom_system_prompt": "", "response": ex["answer"],
                  "annotations": {k: {"Rating": "5", "Rationale": "toy"} for k in
                                  ("instruction_following", "honesty", "truthfulness", "helpfulness")}}
    return {"source": "evol_instruct", "instruction": ex["prompt"], "models": ["toy"], "correct_answers": ["None"],
            "incorrect_answers": ["None"], "completions": [completion]}


def _magpie(ex: dict, rng, zh: bool = False) -> dict:
    row = {"uuid": _uuid(rng), "instruction": ex["prompt"], "gen_input_configs": {"temperature": 1.0, "top_p": 1.0},
           "intent": "toy", "knowledge": "toy", "difficulty": "easy", "input_quality": "good",
           "quality_explanation": "toy", "task_category": MAGPIE_TAGS.get(ex["family"], "Information seeking"),
           "input_length": len(ex["prompt"])}
    if zh:
        return {**row, "model": "Qwen/Qwen2-72B-Instruct", "response": ex["answer"], "language": "ZH",
                "conversations": [{"from": "human", "value": ex["prompt"]}, {"from": "gpt", "value": ex["answer"]}]}
    wrong = ex["answer"][::-1]
    return {**row, "responses": [ex["answer"], wrong], "rewards_armorm": [{"score": 0.2}, {"score": 0.05}],
            "chosen": [{"role": "user", "content": ex["prompt"]}, {"role": "assistant", "content": ex["answer"]}],
            "rejected": [{"role": "user", "content": ex["prompt"]}, {"role": "assistant", "content": wrong}]}


def _helpsteer2(ex: dict, rng) -> dict:
    scores = {k: rng.randint(0, 4) for k in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")}
    return {"prompt": ex["prompt"], "response": ex["answer"], **scores}


def _openmath(ex: dict, rng) -> dict:
    # OpenMathInstruct-2's solutions are mostly right: 1 in 10 carries a wrong final answer here.
    solution = ex["answer"] if rng.random() > 0.1 else ex["answer"].replace(ex["gold"], str(int(ex["gold"]) + 1))
    return {"problem": ex["prompt"], "generated_solution": solution, "expected_answer": ex["gold"],
            "problem_source": "augmented_gsm8k"}


def _leetcode(ex: dict, rng, broken: bool = False) -> dict:
    var = ex["prompt"].split("(")[1].split(")")[0]
    blocks = [f"**Example {i}:**\n\n**Input:** {var} = {'?' if broken else v}\n**Output:** {out}\n"
              for i, (v, out) in enumerate(ex["examples"], 1)]
    content = ex["prompt"] + "\n\n" + "\n".join(blocks)
    slug = hashlib.sha1(ex["prompt"].encode()).hexdigest()[:8]
    return {"id": rng.randint(1, 10**6), "slug": f"toy-{slug}", "title": f"Toy {slug}", "difficulty": "Easy",
            "content": content, "java": "", "c++": "", "javascript": "",
            "python": f"```python\n{ex['answer']}\n```\nThe function applies the two operations in Python order."}


def _self_oss(ex: dict, rng, broken: bool = False) -> dict:
    tests = "" if broken else f"\n\n### Tests\n\n```python\n{ex['tests']}\n```"
    response = f"### Implementation\n\n```python\n{ex['answer']}\n```{tests}"
    return {"instruction": ex["prompt"], "response": response, "prompt": "Create a coding problem.",
            "fingerprint": None, "sha1": hashlib.sha1(ex["prompt"].encode()).hexdigest(), "seed": ex["prompt"],
            "concepts": ["arithmetic"], "id": rng.randint(1, 10**6)}


def _alpaca_zh(ex: dict, rng) -> dict:
    return {"instruction": ex["prompt"], "input": "", "output": ex["answer"]}


def _variant(ex: dict) -> dict:
    return {**ex, "prompt": "  " + ex["prompt"].upper() + " "}


ZH_CONTAMINATION = [{"prompt": "请计算 {a} + {b} 等于多少？", "answer": "{s}", "family": "math"},
                    {"prompt": "用 Python 编写一个函数，返回 x 乘以 {a}。", "answer": "def f(x): return x * {a}",
                     "family": "code"}]


def _zh_contamination(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(1, 9)
        t = ZH_CONTAMINATION[i % 2]
        out.append({"prompt": t["prompt"].format(a=a, b=b), "answer": t["answer"].format(a=a, s=a + b),
                    "family": t["family"]})
    return out


def _with_variants(exs: list[dict], make, rng: random.Random) -> list[dict]:
    return [make(ex, rng) for ex in exs] + [make(_variant(ex), rng) for ex in exs[: len(exs) // 20]]


def _rows(name: str, family: str, make, n: int, seed: int, rng: random.Random) -> list[dict]:
    return _with_variants(tasks.examples(family, "fuse", n, seed), make, rng)


def write_fixtures(out_dir: Path, recipe) -> dict[str, int]:
    """Write the 8 fixture files; returns rows per file."""
    rng = random.Random(recipe.seed)
    n = recipe.fixture_rows
    # The two Chinese sets split the (small) Chinese fusion split between them, so they do not duplicate each other.
    zh = tasks.examples("chinese", "fuse", 2 * n, 8)
    contam = tasks.examples("math", "fuse", n // 10, 99) + tasks.examples("code", "fuse", n // 10, 99)
    files = {
        "openbmb__UltraFeedback": _rows("uf", "general", _ultrafeedback, n, 1, rng)
        + [_ultrafeedback(ex, rng) for ex in contam],
        "Magpie-Align__Magpie-Pro-DPO-100K-v0.1": _rows("mp", "general", _magpie, n, 2, rng)
        + [_magpie(ex, rng) for ex in contam],
        "nvidia__HelpSteer2": [r for r in _rows("hs", "general", _helpsteer2, n, 3, rng) for _ in (0, 1)]
        + [_helpsteer2({**ex, "prompt": ex["prompt"] + "<extra_id_1>Assistant\nok<extra_id_1>User\nAgain?"}, rng)
           for ex in tasks.examples("general", "fuse", n // 20, 4)]
        + [_helpsteer2(ex, rng) for ex in contam],
        "nvidia__OpenMathInstruct-2": _rows("omi", "math", _openmath, 2 * n, 5, rng),
        "greengerong__leetcode": _rows("lc", "code", _leetcode, n, 6, rng)
        + [_leetcode(ex, rng, broken=True) for ex in tasks.examples("code", "fuse", n // 10, 60)],
        "bigcode__self-oss-instruct-sc2-exec-filter-50k": _rows("so", "code", _self_oss, n, 7, rng)
        + [_self_oss(ex, rng, broken=True) for ex in tasks.examples("code", "fuse", n // 10, 70)],
        "llamafactory__alpaca_gpt4_zh": _with_variants(zh[0::2], _alpaca_zh, rng)
        + [_alpaca_zh(ex, rng) for ex in _zh_contamination(rng, n // 10)],
        "Magpie-Align__Magpie-Qwen2-Pro-200K-Chinese": _with_variants(zh[1::2], lambda e, r: _magpie(e, r, zh=True),
                                                                       rng)
        + [_magpie(ex, rng, zh=True) for ex in _zh_contamination(rng, n // 10)],
    }
    for name, rows in files.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)
    return {name: len(rows) for name, rows in files.items()}


def write_benchmarks(out_dir: Path, recipe) -> None:
    """Held-out toy benchmarks, one file per family: prompt, answer, gold, tests, entry_point, family, ..."""
    keep = ("prompt", "answer", "gold", "tests", "entry_point", "word", "instructions", "family", "category",
            "language")
    for family in tasks.FAMILIES:
        rows = tasks.examples(family, "heldout", recipe.bench_examples, recipe.seed + 1000)
        write_jsonl(out_dir / f"{family}.jsonl", [{k: ex.get(k) for k in keep} for ex in rows])
