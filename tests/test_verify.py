"""Math answers against gold through math-verify, on real OpenMathInstruct-2 rows; code checks and test sources."""

import json
from pathlib import Path

from fusechat_utils.code_tests import leetcode_tests, self_oss_tests
from fusechat_utils.verify import check_math, extract_answer, extract_code, run_code, static_check

REAL = Path(__file__).parent / "fixtures" / "real_samples" / "nvidia__OpenMathInstruct-2.jsonl"


def test_real_openmath_solutions_match_their_expected_answer():
    rows = [json.loads(x) for x in REAL.read_text().splitlines()]
    for row in rows:
        assert check_math(row["generated_solution"], row["expected_answer"])
    assert not check_math(rows[0]["generated_solution"], "3")


def test_answer_extraction_and_equivalence():
    assert extract_answer("so \\boxed{\\frac{1}{2}} and later \\boxed{\\frac{3}{\\sqrt{2}}}") == "\\frac{3}{\\sqrt{2}}"
    assert extract_answer("The answer is 42.") == "42"
    assert extract_answer("I think 42") is None
    assert check_math("x = \\boxed{\\frac12}", "0.5")
    assert check_math("The answer is 42.", "42")
    assert not check_math("The answer is 41.", "42")
    assert not check_math("no final answer here, 42", "42")


def test_code_extraction_and_static_check():
    response = "Here:\n```python\ndef f(x):\n    return x + 1\n```\nDone."
    assert extract_code(response) == "def f(x):\n    return x + 1"
    assert static_check("def f(x):\n    return x", "f") == (True, "ok")
    ok, reason = static_check("def f(x) return", "f")
    assert not ok and "syntax error" in reason
    assert static_check("def g(x):\n    return x", "f") == (False, "entry point 'f' not defined")


def test_run_code_passes_and_fails_with_a_reason():
    assert run_code("def f(x):\n    return x + 1", "assert f(1) == 2").passed
    bad = run_code("def f(x):\n    return x", "assert f(1) == 2")
    assert not bad.passed and "AssertionError" in bad.reason


def test_a_pass_means_the_tests_ran_to_the_end():
    """Exit status 0 alone is not trusted (issue 10): a program that exits before its tests fails, with a reason."""
    guarded = "import sys\ndef f(x):\n    return x + 1\ndef main():\n    return 0\nif __name__ == '__main__':\n"
    early = run_code(guarded + "    sys.exit(main())", "assert f(1) == 2")
    assert not early.passed and early.reason == "exited before the tests finished (exit status 0)"
    # without the exit it passes: the code still runs as __main__, its classes pickle, __future__ imports work
    program = "from __future__ import annotations\nimport pickle\nclass A:\n    pass\n" + guarded + "    main()"
    tests = "assert f(1) == 2 and __name__ == '__main__'\nassert type(pickle.loads(pickle.dumps(A()))) is A"
    ok = run_code(program, tests)
    assert ok.passed, ok.reason
    late = run_code("import atexit, os\natexit.register(os._exit, 3)\ndef f(x):\n    return x + 1", "assert f(1) == 2")
    assert not late.passed and late.reason == "exit status 3 after the tests passed"


SELF_OSS = """Here is the implementation:

```python
def add_one(x: int) -> int:
    return x + 1
```

### Tests

```python
assert add_one(1) == 2
assert add_one(-1) == 0
```
"""

LEETCODE = """Given an array of integers `nums` and an integer `target`, return indices of the two numbers.

**Example 1:**

**Input:** nums = \\[2,7,11,15\\], target = 9
**Output:** \\[0,1\\]

**Example 2:**

**Input:** s = "III"
**Output:** 3

**Example 3:**

**Input:** flag = true
**Output:** false
"""


def test_self_oss_tests_come_from_the_asserts():
    tests, entry = self_oss_tests(SELF_OSS)
    assert entry == "add_one" and tests == "assert add_one(1) == 2\nassert add_one(-1) == 0"
    assert run_code("def add_one(x):\n    return x + 1", tests).passed
    assert self_oss_tests("```python\ndef f(x):\n    return x\n```") is None


def test_leetcode_tests_come_from_the_examples():
    python = "```python\ndef twoSum(nums, target):\n    return [0, 1]\n```\nA hash map solution."
    tests, entry = leetcode_tests(LEETCODE.replace("\\[", "[").replace("\\]", "]"), python)
    assert entry == "twoSum"
    assert tests.splitlines() == ["assert twoSum(nums=[2, 7, 11, 15], target=9) == [0, 1]",
                                  "assert twoSum(s='III') == 3", "assert twoSum(flag=True) == False"]
    assert leetcode_tests("**Input:** x = ?\n**Output:** 3\n", python) is None
