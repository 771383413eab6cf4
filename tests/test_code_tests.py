"""Test sources for code prompts: self-oss-instruct responses and greengerong/leetcode rows (real formats)."""

from fusechat_utils.code_tests import leetcode_tests, self_oss_tests
from fusechat_utils.verify import run_code

SELF_OSS = '''Here is a Python function that sums the even numbers:

```python
def sum_even(values):
    return sum(v for v in values if v % 2 == 0)
```

## Tests

```python
assert sum_even([1, 2, 3, 4]) == 6
assert sum_even([]) == 0
```
'''

TWO_SUM_CONTENT = '''Given an array of integers `nums` and an integer `target`, return indices of the two numbers.

**Example 1:**

**Input:** nums = \\[2,7,11,15\\], target = 9
**Output:** \\[0,1\\]
**Explanation:** Because nums\\[0\\] + nums\\[1\\] == 9, we return \\[0, 1\\].

**Example 2:**

**Input:** nums = \\[3,2,4\\], target = 6
**Output:** \\[1,2\\]
'''

TWO_SUM_PY = '''```python
def twoSum(nums, target):
    seen = {}
    for i, num in enumerate(nums):
        if target - num in seen:
            return [seen[target - num], i]
        seen[num] = i
    return []
```
The algorithm keeps a map from value to index.'''

ROMAN_CONTENT = '''Given a roman numeral, convert it to an integer.

**Example 1:**

**Input:** s =  "III "
**Output:** 3

**Example 2:**

**Input:** s =  "LVIII "
**Output:** 58
'''

ROMAN_PY = '''```python
def roman_to_int(s):
    values = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}
    total, prev = 0, 0
    for c in s.strip():
        v = values[c]
        total += v - 2 * prev if v > prev else v
        prev = v
    return total
```'''


def test_self_oss_tests_extracts_asserts_and_entry_point():
    tests, entry = self_oss_tests(SELF_OSS)
    assert entry == "sum_even"
    assert "assert sum_even([1, 2, 3, 4]) == 6" in tests
    assert "def sum_even" not in tests


def test_self_oss_without_asserts_is_none():
    assert self_oss_tests("```python\ndef f(x):\n    return x\n```\nNo tests here.") is None


def test_leetcode_two_sum_builds_asserts_that_pass_and_catch_wrong_code():
    tests, entry = leetcode_tests(TWO_SUM_CONTENT, TWO_SUM_PY)
    assert entry == "twoSum"
    assert tests.count("assert ") == 2
    program = TWO_SUM_PY.split("```python\n")[1].split("```")[0]
    assert run_code(program, tests, timeout_s=10).passed
    assert not run_code("def twoSum(nums, target):\n    return [0, 0]", tests, timeout_s=10).passed


def test_leetcode_roman_strings_and_unparseable():
    result = leetcode_tests(ROMAN_CONTENT, ROMAN_PY)
    assert result is not None and result[1] == "roman_to_int"
    assert "58" in result[0]
    assert leetcode_tests("**Example 1:**\n**Input:** grid = <image>\n**Output:** ???", ROMAN_PY) is None
