"""LiveCodeBench (code_generation_lite rows): loading incl. compressed private tests, FuseEval's exact prompts per
family, the date windows, and grading of stdin and functional programs through the kit's sandbox."""

import base64
import json
import os
import pickle
import zlib
from pathlib import Path

import pytest

from fusechat_utils.chat_templates import family_tokenizer
from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import livecodebench as lcb

FIX = Path(__file__).parent / "fixtures" / "benchmarks" / "livecodebench_test.jsonl"
ROWS = [json.loads(line) for line in FIX.read_text().splitlines()]

# FuseEval lcb_runner/prompts/code_generation.py strings, written out (fuseeval_settings.md section 6).
SYSTEM = ("You are an expert Python programmer. You will be given a question (problem specification) and will generate "
          "a correct Python program that matches the specification and passes all tests. You will NOT return "
          "anything except for the program.")
WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose your code "
                "within delimiters.")
WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test "
                   "on the sample inputs). Enclose your code within delimiters as follows.")


@pytest.fixture(scope="module")
def items():
    return {item["id"]: item for item in lcb.load(FIX)}


def fenced(code):
    return f"Here is my solution.\n```python\n{code}\n```\nIt reads the input."


def encode(obj):
    return base64.b64encode(zlib.compress(pickle.dumps(obj, protocol=4))).decode()


# ---- rows ----


def test_load_reads_both_test_types_and_decodes_compressed_private_tests(items):
    assert list(items) == ["abc370_a", "3410", "1990_A", "3420", "1873_A"]
    assert [items[i]["testtype"] for i in items] == ["stdin", "functional", "stdin", "functional", "stdin"]
    assert items["3410"]["func_name"] == "smallestSum" and items["abc370_a"]["func_name"] is None
    raw = ROWS[1]["private_test_cases"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)  # really stored compressed, as the released files store large test sets
    assert zlib.decompress(base64.b64decode(raw))[:2] == b"\x80\x04"  # pickle protocol 4
    assert lcb.decode_tests(raw) == [{"input": "[5]\n1", "output": "5", "testtype": "functional"},
                                     {"input": "[-2, 7, 0, -2]\n3", "output": "-4", "testtype": "functional"}]
    assert lcb.decode_tests(ROWS[0]["private_test_cases"])[0] == {"input": "10 -4\n", "output": "6\n",
                                                                  "testtype": "stdin"}
    assert items["1990_A"]["n_tests"] == 3
    real = lcb.decode_tests(ROWS[4]["private_test_cases"])  # a real row's value (codeforces 1873_A)
    assert len(real) == 4 and real[0] == {"input": "1\nabc\n", "output": "YES\n", "testtype": "stdin"}
    assert items["1873_A"]["n_tests"] == 5


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    evil = encode(Evil(marker))
    with pytest.raises(ValueError, match="refused: the pickle must hold one str.*REDUCE"):
        lcb.decode_tests(evil)
    bad = tmp_path / "lcb.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({**ROWS[1], "private_test_cases": evil}) + "\n")
    with pytest.raises(UserError, match=r"lcb\.jsonl: row 2: field 'private_test_cases': refused"):
        lcb.load(bad)
    assert not marker.exists()
    with pytest.raises(ValueError, match="refused"):
        lcb.decode_tests(encode([{"input": "", "output": "", "testtype": "stdin"}]))  # a pickled list, not a str


def test_bad_rows_name_the_file_row_and_field(tmp_path):
    bad = tmp_path / "rows.jsonl"
    cases = [({k: v for k, v in ROWS[0].items() if k != "metadata"}, r"row 1: field 'metadata' missing"),
             ({**ROWS[0], "public_test_cases": "not json"}, r"row 1: field 'public_test_cases': neither JSON"),
             ({**ROWS[1], "metadata": "{}"}, r"row 1: field 'metadata': functional tests need a func_name")]
    for row, message in cases:
        bad.write_text(json.dumps(row) + "\n")
        with pytest.raises(UserError, match=rf"rows\.jsonl: {message}"):
            lcb.load(bad)


def test_date_windows_as_run_label_and_file_name(items):
    def ids(start, end):
        return [i for i, item in items.items() if lcb.in_window(item, start, end)]

    assert lcb.DEFAULT_WINDOW == "as_run" and lcb.WINDOWS["as_run"] == ("2024-06-30", "2024-11-30")
    # 3420 (2024-12-07) came after FuseEval's run: a newer release's problem, outside the default window
    assert [i for i, item in items.items() if lcb.in_window(item)] == ["abc370_a", "3410", "1990_A"]
    assert ids("2024-06-30", None) == ["abc370_a", "3410", "1990_A", "3420"]
    assert ids(*lcb.WINDOWS["label"]) == ["abc370_a", "3410"]  # 2024-07-06 and 2024-12-07 fall outside 2408-2411
    assert ids(*lcb.WINDOWS["file_name"]) == ["abc370_a", "3410", "1990_A"]
    assert ids("2024-07-06", "2024-07-06") == ["1990_A"]  # both ends inclusive at midnight, as compute_scores


# ---- prompts and decoding ----


def question(content, starter):
    fmt = (f"### Format: {WITH_STARTER}\n```python\n{starter}\n```\n\n" if starter
           else f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n")
    return f"### Question:\n{content}\n\n{fmt}### Answer: (use the provided format with backticks)\n\n"


def test_llama3_prompt_is_lcb_llama3_style_through_the_meta_llama_3_template(items):
    item = items["1873_A"]  # the real row
    tokenizer = family_tokenizer("llama3")  # the kit's Llama 3.1 tokenizer (real template and special tokens)
    user = question(item["question_content"], "").strip()  # the template trims message contents
    expected = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + SYSTEM + "<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\n" + user + "<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert user.startswith("### Question:\nThere are three cards with letters $\\texttt{a}$")
    assert user.endswith("```python\n# YOUR CODE HERE\n```\n\n### Answer: (use the provided format with backticks)")
    assert lcb.build_prompt(item, "llama3", tokenizer) == expected
    # FuseEval hard-codes Meta-Llama-3-8B-Instruct's template; Llama 3.1's own would add a dated system header
    own = tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                                        tokenize=False, add_generation_prompt=True)
    assert "Cutting Knowledge Date" in own and own != expected


def test_gemma2_prompt_is_one_user_turn_without_the_leading_bos(items):
    item = items["3410"]
    starter = "class Solution:\n    def smallestSum(self, nums: List[int], k: int) -> int:\n        "
    assert item["starter_code"] == starter
    expected = ("<start_of_turn>user\n" + SYSTEM + "\n" + question(item["question_content"], starter).strip()
                + "<end_of_turn>\n<start_of_turn>model\n")
    assert lcb.build_prompt(item, "gemma2", family_tokenizer("gemma2")) == expected
    assert lcb.build_prompt(item, "gemma2", None) == expected


def test_qwen25_prompt_is_the_codeqwen_raw_string(items):
    head = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\nYou will be given a "
            "question (problem specification) and will generate a correct Python program that matches the "
            "specification and passes all tests. You will NOT return anything except for the program.\n\n")
    stdin, functional = items["abc370_a"], items["3410"]
    assert lcb.build_prompt(stdin, "qwen25", None) == (
        head + "Question: " + stdin["question_content"] + "\n\n" + WITHOUT_STARTER
        + "\n```python\n# YOUR CODE HERE\n```\n\n<|im_end|>\n<|im_start|>assistant\n")
    assert lcb.build_prompt(functional, "qwen25", family_tokenizer("qwen25")) == (
        head + "Question: " + functional["question_content"] + "\n\n" + WITH_STARTER + "\n```python\n"
        + functional["starter_code"] + "\n```\n\n<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="unknown family"):
        lcb.build_prompt(stdin, "mistral", None)


def test_decoding_is_lcb_runner_defaults_for_every_family():
    for family in ("llama3", "qwen25", "gemma2"):
        assert lcb.decoding(family) == {"n": 10, "temperature": 0.2, "top_p": 0.95, "max_tokens": 2000,
                                        "stop": ["###"], "max_model_len": 4096}
    assert lcb.TEST_TIMEOUT_S == 6


# ---- grading ----


def test_oracle_passes_and_wrong_fails_on_every_fixture_row(items):
    rows = list(items.values())
    graded = lcb.grade_many([(i, lcb.oracle_response(i)) for i in rows] + [(i, lcb.wrong_response(i)) for i in rows])
    assert [g["correct"] for g in graded] == [True] * 5 + [False] * 5, [g["reason"] for g in graded]
    assert all(g["reason"] == "AssertionError: test 0: wrong answer" for g in graded[5:])
    assert lcb.oracle_response({**rows[0], "solution": None}) is None  # real rows carry no reference


@pytest.mark.slow
def test_stdin_programs_each_input_style_and_output_checks(items):
    sums, means = items["abc370_a"], items["1990_A"]
    cases = [
        (sums, "import sys\na, b = map(int, sys.stdin.buffer.read().split())\nsys.stdout.write(f'{a + b}\\n')", True),
        (sums, "a, b = map(int, open(0).read().split())\nprint(a + b)", True),
        (sums, "from sys import stdin\na, b = map(int, stdin.readline().split())\nprint(a + b)\nsys.exit(0)", True),
        (sums, "a, b = map(int, input().split())\nprint(a + b)\nexit()", False),  # exit() fails, as in lcb_runner
        (sums, "print(3)", False),  # right on the public test only: the private tests run
        (sums, "import time\nwhile True:\n    time.sleep(0.01)", False),
        (means, "t = int(input())\nfor _ in range(t):\n    input()\n    v = list(map(int, input().split()))\n"
                "    print(sum(v) / len(v))", True),  # 2.5 vs 2.500000: compared as numbers
        (means, "t = int(input())\nfor _ in range(t):\n    input()\n    v = list(map(int, input().split()))\n"
                "    print(round(sum(v) / len(v), 1))", False),  # 0.2 vs 0.250000
    ]
    graded = lcb.grade_many([(item, fenced(code)) for item, code, _ in cases])
    assert [g["correct"] for g in graded] == [ok for _, _, ok in cases], [g["reason"] for g in graded]
    assert "TypeError" in graded[3]["reason"] and graded[4]["reason"] == "AssertionError: test 1: wrong answer"
    assert "TimeoutError: time limit exceeded (6 s)" in graded[5]["reason"]
    assert graded[6]["pred"].startswith("t = int(input())")


def test_functional_programs_tuple_results_private_tests_and_top_level_functions(items):
    smallest, largest = items["3410"], items["3420"]
    cases = [
        (largest, "class Solution:\n    def twoLargest(self, nums):\n        a, b = sorted(nums)[-2:]\n"
                  "        return b, a", True),
        (largest, "def twoLargest(nums):\n    return sorted(nums, reverse=True)[:2]", True),
        (smallest, "class Solution:\n    def smallestSum(self, nums: List[int], k: int) -> int:\n"
                   "        return sum(sorted(nums)[:k]) if len(nums) > 1 else 0", False),  # wrong on private [5]
        (smallest, "class Solution:\n    def smallestSum(self, nums, k):\n        return sum(sorted(nums)[:k]\n", False),
    ]
    graded = lcb.grade_many([(item, fenced(code)) for item, code, _ in cases])
    assert [g["correct"] for g in graded] == [ok for _, _, ok in cases], [g["reason"] for g in graded]
    assert graded[2]["reason"] == "AssertionError: test 1: wrong answer"
    assert graded[3]["reason"].startswith("AssertionError: setup: SyntaxError")


def test_code_is_the_first_fenced_block_as_lcb_runner_extracts_it(items):
    first = "```python\nprint(1)\n```\nor\n```python\nprint(2)\n```"
    assert lcb.extract_code(first) == "print(1)"
    assert lcb.extract_code("Answer: ```python\nprint(1)\nprint(2)```") == "print(1)"
    assert lcb.extract_code("print(1)") is None and lcb.extract_code("```python\nprint(1)") is None
    assert lcb.grade(items["abc370_a"], "a, b = map(int, input().split())\nprint(a + b)") == {
        "correct": False, "pred": None, "reason": "no code block (fewer than two ``` lines)"}


# (printed, expected) with lcb_runner's own verdict: its run_test (FuseEval's lcb_runner/evaluation/testing_util.py)
# on a program writing `printed`, run once outside the kit (pyext stubbed); 40 of 40 agree with outputs_match.
LCB_PASSES = [["3 \n\n", "3\n"], ["1.0000000001\n", "1\n"], ["1 2\n", "1 2\n"], [" 1 2 \n", "1 2\n"],
              ["1\n\n2\n", "1\n2\n"], ["1\r\n2\r\n", "1\n2\n"], ["0.5000001\n2\n", "0.5\n2\n"], ["1.0\n", "1\n"],
              ["1\n", "1.0\n"], ["inf\n", "inf\n"], ["nan\n", "nan\n"], ["1e5\n", "100000\n"], ["100000\n", "1e5\n"],
              ["a b\nc\n", "a b\nc"], ["3.14159\n", "3.14159265\n"], ["3.141592\n", "3.14159265\n"],
              ["1 2 3\n", "1 2 3 \n"], ["-0.0\n", "0\n"], ["\n1\n", "1\n"], ["1\n", "\n1\n"], ["x\n\ny\n", "x\ny\n"],
              ["10\n", "10.000001\n"], ["1 \n 2\n", "1\n2\n"], ["\t5\n", "5\n"], ["5", "5\n"], ["1_000\n", "1000.0\n"]]
LCB_FAILS = [["0.5 2\n", "0.500000 2\n"], ["2 1\n", "1 2\n"], ["03\n", "3\n"], ["1\n2\n", "1 2\n"], ["", "1\n"],
             ["YES\n", "NO\n"], ["1.001\n", "1\n"], ["1  2\n", "1 2\n"], ["0.5000001 2\n", "0.5 2\n"],
             ["Yes\n", "YES\n"], ["a  b\n", "a b\n"], ["1\n2\n3\n", "1\n2\n"], ["\uff12\n", "2\n"], ["0x10\n", "16\n"]]


def test_output_comparison_is_lcb_runners_case_by_case():
    assert [c for c in LCB_PASSES if not lcb.outputs_match(*c)] == []
    assert [c for c in LCB_FAILS if lcb.outputs_match(*c)] == []


def test_pass_at_1_is_the_mean_over_problems_of_the_samples_share():
    assert lcb.pass_at_1([[True, False, False, True], [{"correct": True}] * 2, [False]]) == pytest.approx(0.5)
    assert lcb.pass_at_1([]) == 0.0
