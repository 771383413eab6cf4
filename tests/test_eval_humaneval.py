"""HumanEval through the kit's executor: canonical solutions pass 164/164, broken ones fail, prompts are built."""

import time

import pytest

from fusechat_utils.evaluation import humaneval


def test_all_164_canonical_solutions_pass_through_the_executor():
    start = time.perf_counter()
    report = humaneval.check_canonical(timeout_s=20.0)
    print(f"HumanEval canonical: {report['passed']}/{report['n']} in {time.perf_counter() - start:.1f} s")
    assert report["n"] == 164 and report["failed"] == []


def test_a_broken_solution_fails_and_a_full_definition_in_a_code_block_passes():
    problems = humaneval.load_problems(3)
    broken = [p["canonical_solution"].replace("return", "return None and", 1) for p in problems]
    assert not any(r["passed"] for r in humaneval.score_humaneval(problems, broken))
    stub = humaneval.score_humaneval(problems[:1], ["    pass\n"])
    assert stub[0]["passed"] is False
    full = "Here you go:\n```python\n" + problems[0]["prompt"] + problems[0]["canonical_solution"] + "```\nDone."
    assert humaneval.score_humaneval(problems[:1], [full])[0]["passed"] is True


def test_an_infinite_loop_times_out():
    problem = humaneval.load_problems(1)
    rows = humaneval.score_humaneval(problem, ["    while True:\n        pass\n"], timeout_s=1.0)
    assert rows[0]["passed"] is False and "timeout" in rows[0]["reason"].lower()


def test_prompt_is_the_evalplus_chat_instruction_around_the_problem():
    problem = humaneval.load_problems(1)[0]
    prompt = humaneval.build_prompt(problem)
    assert prompt.startswith("Please provide a self-contained Python script") and problem["entry_point"] in prompt
    with pytest.raises(ValueError, match="1 problems but 2 responses"):
        humaneval.score_humaneval([problem], ["a", "b"])
