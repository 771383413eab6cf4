"""evalplus_code: EvalPlus rows, FuseEval's prompts and decoding, evalplus's sanitizer, grading in the sandbox."""

import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from fusechat_utils.chat_templates import family_tokenizer
from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import evalplus_code as ep

ROOT = Path(__file__).resolve().parents[1] / "data" / "benchmarks"
HUMANEVAL = ROOT / "humaneval" / "HumanEval.jsonl"
MBPP_PLUS = ROOT / "mbpp_plus" / "MbppPlus-v0.1.0.jsonl"

# FuseEval eval_plus/model.py, written out from the settings notes (section 7) and model.py's ChatML class.
INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a markdown code "
               "block:")
RESPONSE = ("Below is a Python script with a self-contained function that solves the problem and passes "
            "corresponding tests:")


@lru_cache(maxsize=1)
def items() -> dict:
    return {it["id"]: it for it in ep.load(HUMANEVAL) + ep.load(MBPP_PLUS)}


@lru_cache(maxsize=3)
def tokenizer(family: str):
    return family_tokenizer(family)


# ----------------------------------------------------------------------------------------------------------------
# rows


def test_load_real_files():
    he, mbpp = ep.load(HUMANEVAL), ep.load(MBPP_PLUS)
    assert len(he) == 164 and len(mbpp) == 399
    assert he[0]["id"] == "HumanEval/0" and he[0]["dataset"] == "humaneval" and "check(candidate)" in he[0]["test"]
    assert mbpp[0]["id"] == "Mbpp/2" and mbpp[0]["dataset"] == "mbpp" and mbpp[0]["atol"] == 0
    assert mbpp[0]["base_input"][0] == [[3, 4, 5, 6], [5, 7, 4, 10]]
    assert items()["Mbpp/793"]["plus_input"] == []  # {} in the file: evalplus iterates it as no inputs
    assert sum(it["atol"] > 0 for it in mbpp) == 16


@pytest.mark.parametrize("change, field", [
    (lambda r: r.pop("entry_point"), "entry_point"),
    (lambda r: r.update(base_input="[[1, 2]]"), "base_input"),
    (lambda r: r.update(plus_input=[1, 2]), "plus_input"),
    (lambda r: r.update(atol="0"), "atol"),
    (lambda r: r.update(task_id="Task/2"), "task_id"),
    (lambda r: r.pop("base_input"), "base_input"),
])
def test_bad_row_names_file_row_field(tmp_path, change, field):
    good, row = (json.loads(line) for line in MBPP_PLUS.read_text().splitlines()[:2])
    change(row)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError) as err:
        ep.load(path)
    assert str(path) in str(err.value) and "row 2" in str(err.value) and repr(field) in str(err.value)


def test_bad_json_and_humaneval_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(HUMANEVAL.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(UserError, match=r"bad\.jsonl: row 2: not valid JSON"):
        ep.load(path)
    row = json.loads(HUMANEVAL.read_text().splitlines()[0])
    row["test"] = 3
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match=r"row 1: field 'test' must be str, not int"):
        ep.load(path)


# ----------------------------------------------------------------------------------------------------------------
# prompts and decoding


def test_prompt_llama3_exact():
    item = items()["HumanEval/0"]
    task = item["prompt"].strip()
    expected = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                f"{INSTRUCTION}\n```\n{task}\n```<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                f"{RESPONSE}\n```python\n")
    assert ep.build_prompt(item, "llama3", tokenizer("llama3")) == expected
    assert task.startswith("from typing import List\n\n\ndef has_close_elements(") and task.endswith('True\n    """')


def test_prompt_gemma2_exact_without_bos():
    item = items()["Mbpp/2"]
    expected = ("<start_of_turn>user\n" + INSTRUCTION + '\n```\n"""\nWrite a function to find the shared '
                "elements from the given two lists.\n"
                "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"
                '"""\n```<end_of_turn>\n<start_of_turn>model\n' + RESPONSE + "\n```python\n")
    assert ep.build_prompt(item, "gemma2", tokenizer("gemma2")) == expected


def test_prompt_qwen25_is_fuseeval_chatml_string():
    item = items()["HumanEval/0"]
    expected = ("<|im_start|>system\nYou are an intelligent programming assistant to produce Python algorithmic "
                "solutions<|im_end|>\n<|im_start|>user\nCan you complete the following Python function?\n```python\n"
                + item["prompt"].strip() + "\n```\n<|im_end|>\n<|im_start|>assistant\n```python\n")
    assert ep.build_prompt(item, "qwen25", tokenizer("qwen25")) == expected
    assert ep.build_prompt(item, "qwen25", None) == expected  # a fixed string: the tokenizer is not used


def test_prompt_unknown_family_or_no_tokenizer():
    with pytest.raises(UserError, match="mistral"):
        ep.build_prompt(items()["HumanEval/0"], "mistral", tokenizer("llama3"))
    with pytest.raises(UserError, match="tokenizer"):
        ep.build_prompt(items()["HumanEval/0"], "llama3", None)


def test_decoding():
    d = ep.decoding("gemma2")
    assert (d["temperature"], d["top_p"], d["max_tokens"], d["n"], d["max_model_len"]) == (0.0, 1.0, 2048, 1, 4096)
    assert d["stop"] == ["<|endoftext|>", "<|endofmask|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<eos>",
                         "<end_of_turn>", "</s>", "\nif __name__", "\ndef main(", "\nprint(", "\n#", "\n```"]
    d["stop"].append("x")
    assert ep.decoding("gemma2")["stop"][-1] == "\n```"


# ----------------------------------------------------------------------------------------------------------------
# sanitizing


MESSY = ("from typing import List\nimport math\n\nEPSILON = 0.0\nUNUSED = 3\n\n\n"
         "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
         "\tfor i, a in enumerate(numbers):\n\t\tfor b in numbers[i + 1:]:\n"
         "\t\t\tif abs(a - b) < threshold + EPSILON:\n\t\t\t\treturn True\n\treturn False\n\n\n"
         "def unused_helper(x):\n    return x * 2\n\n\n"
         "assert has_close_elements([1.0, 2.0], 0.5) is False\n"
         'if __name__ == "__main__":\n    print(has_close_elements([1.0, 1.1], 0.5))\n```\n\n'
         "This solution compares every pair of numbers.")
SANITIZED = ("from typing import List\nimport math\nEPSILON = 0.0\n"
             "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
             "    for i, a in enumerate(numbers):\n        for b in numbers[i + 1:]:\n"
             "            if abs(a - b) < threshold + EPSILON:\n                return True\n    return False")


def test_sanitize_messy_response():
    code = ep.solution_code(MESSY)
    assert "\t" not in code and code.endswith("assert has_close_elements([1.0, 2.0], 0.5) is False")
    assert ep.sanitized(items()["HumanEval/0"], MESSY) == SANITIZED
    assert ep.solution_code("x = 1\n```\nmore") == "x = 1"


# ----------------------------------------------------------------------------------------------------------------
# grading through the sandbox


def test_grade_humaneval_rows():
    he = [items()[f"HumanEval/{i}"] for i in (0, 33, 50)]
    pairs = [(he[0], MESSY), *[(it, ep.oracle_response(it)) for it in he], *[(it, ep.wrong_response(it)) for it in he],
             # decode_shift may not lean on the prompt's encode_shift: evalplus runs the solution alone
             (he[2], "def decode_shift(s: str):\n    return encode_shift(encode_shift(s * 0) + s)")]
    graded = ep.grade_many(pairs)
    assert [g["correct"] for g in graded] == [True] * 4 + [False] * 4
    assert graded[0]["pred"] == SANITIZED and "NameError" in graded[-1]["reason"]


def test_grade_mbpp_plus_base_and_plus():
    pos, sphere, sets = (items()[t] for t in ("Mbpp/66", "Mbpp/82", "Mbpp/2"))
    pairs = [(pos, "def pos_count(l):\n    return len([x for x in l if x > 0])"),
             (pos, "def pos_count(l):\n    return len([x for x in l if x >= 0])"),  # 0 counted: only plus has 0s
             (sphere, "import math\ndef volume_sphere(r):\n    return 4 * math.pi * r ** 3 / 3"),  # float noise: atol
             (sphere, "def volume_sphere(r):\n    return (4 / 3) * 3.14 * r ** 3"),
             (sets, "def similar_elements(a, b):\n    return tuple(sorted(set(b) & set(a), reverse=True))"),
             (sets, "def similar_elements(a, b):\n    return tuple(set(a) | set(b))")]
    graded = ep.grade_many(pairs)
    assert [(g["base_correct"], g["correct"]) for g in graded] == [
        (True, True), (True, False), (True, True), (False, False), (True, True), (False, False)]
    assert graded[1]["reason"].startswith("AssertionError: evalplus: plus input")


def test_time_limit_and_guard_as_evalplus():
    item = items()["Mbpp/8"]
    start = time.monotonic()
    loop, opens = ep.grade_many([
        (item, "def square_nums(nums):\n    while True:\n        pass"),
        (item, "def square_nums(nums):\n    open('/tmp/log', 'w').write('x')\n    return [i ** 2 for i in nums]")])
    assert time.monotonic() - start < 30  # max(1 s, 4 x reference) per input, not the sandbox's 120 s
    assert not loop["correct"] and "TimeoutError" in loop["reason"]
    assert not opens["correct"] and "'NoneType' object is not callable" in opens["reason"]  # reliability_guard


def humaneval_plus_row(**changes) -> dict:
    """HumanEval/32 in the HumanEvalPlus schema (that file is not shipped), inputs taken from its tests."""
    he = items()["HumanEval/32"]
    row = {k: he[k] for k in ("task_id", "prompt", "entry_point", "canonical_solution")}
    row.update(base_input=[[[1, 2]], [[-6, 11, -6, 1]]], plus_input=[[[-3, -6, 2, 4]], [[5, 0, 1, 7]]], atol=1e-06,
               contract="")
    return {**row, **changes}


def test_humaneval_plus_schema_find_zero(tmp_path):
    path = tmp_path / "HumanEvalPlus.jsonl"
    path.write_text(json.dumps(humaneval_plus_row()) + "\n")
    item = ep.load(path)[0]
    assert item["dataset"] == "humaneval" and "test" not in item
    newton = ("def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n\n"
              "def find_zero(xs):\n    x = 10.0\n    for _ in range(200):\n"
              "        d = sum(i * c * x ** (i - 1) for i, c in enumerate(xs) if i)\n"
              "        x = x - poly(xs, x) / d\n    return x")
    graded = ep.grade_many([(item, ep.oracle_response(item)), (item, newton), (item, ep.wrong_response(item)),
                            (item, newton.replace("return x", "return x + 0.01"))])
    # Newton finds 3.0 where the canonical finds 2.0 for (x-1)(x-2)(x-3): any zero passes (evalplus's oracle)
    assert [g["correct"] for g in graded] == [True, True, False, False]


def test_reference_failure_is_reported(tmp_path):
    row = humaneval_plus_row(plus_input=[[[1, 2]], [["a", "b"]]])  # not numbers: the canonical raises
    path = tmp_path / "HumanEvalPlus.jsonl"
    path.write_text(json.dumps(row) + "\n")
    item = ep.load(path)[0]
    graded = ep.grade(item, ep.oracle_response(item))
    assert graded["base_correct"] and not graded["correct"]
    assert "reference solution failed on plus input 2" in graded["reason"]


# ----------------------------------------------------------------------------------------------------------------
# evalplus's comparison, mirrored (values only: nothing executes)


def oracle_module() -> dict:
    import evalplus.eval._special_oracle as special

    return vars(special)


def verdict(dataset, entry, inp, out, exp, atol=0):
    try:
        return ep._compare(dataset, entry, inp, out, exp, atol, oracle_module())
    except AssertionError:
        return "fail"


def test_compare_special_oracles():
    assert verdict("mbpp", "sum_div", [7], 0, 1) == 0
    assert verdict("mbpp", "are_equivalent", [36, 57], "anything", False) == 0
    assert verdict("mbpp", "similar_elements", [(3, 4), (4, 3)], (4, 3), (3, 4)) == 0
    assert verdict("mbpp", "similar_elements", [(3, 4), (4, 3)], (4,), (3, 4)) == "fail"
    assert verdict("mbpp", "check_str", ["ab"], object(), True) == 0  # any non-None output when one is expected
    assert verdict("mbpp", "check_str", ["ab"], False, True) == "fail"
    assert verdict("humaneval", "find_zero", [[-6, 11, -6, 1]], 3.0, 1.0, 1e-6) == 1e-6
    assert verdict("humaneval", "find_zero", [[-6, 11, -6, 1]], 2.5, 1.0, 1e-6) == "fail"
    assert verdict("humaneval", "sum_div", [7], 0, 1) == "fail"  # MBPP's oracles only apply to MBPP


def test_compare_float_tolerance():
    assert verdict("mbpp", "f", [], 0.1 + 0.2, 0.3) == 1e-6  # float output: atol 1e-6 from then on
    assert verdict("mbpp", "f", [], [0.1 + 0.2, 1.0], [0.3, 1.0]) == 1e-6
    assert verdict("mbpp", "f", [], [0.1 + 0.2, 1.0], (0.3, 1.0)) == "fail"  # types must match
    assert verdict("mbpp", "f", [], 1, 1.0) == 1e-6  # equal: 1 == 1.0
    assert verdict("mbpp", "f", [], 3, 4) == "fail"
    assert verdict("mbpp", "f", [], 3.00000001, 3, 1e-6) == "fail"  # int expected, float given
    assert verdict("mbpp", "f", [], [[1.0, 2.0000001]], [[1.0, 2.0]], 1e-4) == 1e-4  # nested: the task's atol


@pytest.mark.parametrize("a, b", [
    (1.0, 1.0 + 1e-7), (1.0, 1.1), ([1.0, 2.0], [1.0, 2.0 + 1e-9]), ([[1.0], [2.0]], [[1.0, 1.0], [2.0, 2.0]]),
    ([1.0, 2.0], [[1.0, 2.0], [1.0, 2.0]]), ([[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0]]), (["a"], ["a"]),
    ([1.0, None], [1.0, None]), (float("inf"), float("inf")), (float("inf"), -float("inf")), (float("nan"), 1.0),
    (1 + 2j, 1 + 2.0000001j), ([True, 1], [1.0, 1.0]), ([], []), ([1.0, 1.0], [1.0]), ([1.0, 2.0], [1.0]),
    (1e300, 1.00000001e300)])
def test_allclose_matches_numpy(a, b):
    try:
        expected = bool(np.allclose(a, b, rtol=1e-07, atol=1e-6))
    except (TypeError, ValueError):
        expected = False  # evalplus counts numpy's refusal as a failure
    assert ep._allclose(a, b, 1e-07, 1e-6) == expected


# ----------------------------------------------------------------------------------------------------------------
# whole real sets: the canonical solution passes, a None-returning one fails


def whole_set(path: Path, response, every: int = 1) -> tuple[float, list]:
    """The share of a whole real file (or every k-th row of it) graded correct, and the ids that were."""
    rows = ep.load(path)[::every]
    graded = ep.grade_many([(it, response(it)) for it in rows])
    ids = [it["id"] for it, g in zip(rows, graded) if g["correct"]]
    return len(ids) / len(rows), ids


@pytest.mark.slow
def test_whole_humaneval_oracle_and_wrong():
    assert whole_set(HUMANEVAL, ep.oracle_response)[0] == 1.0
    assert whole_set(HUMANEVAL, ep.wrong_response)[0] == 0.0


@pytest.mark.slow
def test_whole_mbpp_plus_oracle():
    share, passed = whole_set(MBPP_PLUS, ep.oracle_response)
    # Mbpp/255: the canonical needs over 1 GiB (the sandbox's cap); Mbpp/630: evalplus's sanitizer drops its
    # generator helper `adjac` (no return statement)
    assert share >= 0.99 and {it["id"] for it in ep.load(MBPP_PLUS)} - set(passed) <= {"Mbpp/255", "Mbpp/630"}


@pytest.mark.slow
def test_mbpp_plus_wrong_on_every_fifth_task():
    # The whole set's figure (1/399: Mbpp/164) comes from benchmarks/eval_oracles.py; a sample keeps make test short.
    share, passed = whole_set(MBPP_PLUS, ep.wrong_response, every=5)
    assert share <= 0.02 and set(passed) <= {"Mbpp/164"}  # evalplus's oracle for are_equivalent accepts anything
