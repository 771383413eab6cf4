"""FuseEval Math-Eval (GSM8K, MATH-500, AMC 23): real rows, FuseEval's exact prompts, extraction and grading."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import fuseeval_math as fm

DATA = Path(__file__).resolve().parent.parent / "data" / "benchmarks"
GSM8K_QWEN = DATA / "gsm8k" / "qwen2.5-math" / "test.jsonl"
GSM8K_OPENAI = DATA / "gsm8k" / "test.jsonl"
MATH500 = DATA / "math500" / "test.jsonl"

# The first two rows of Qwen2.5-Math evaluation/data/amc23/test.jsonl (= FuseEval Math-Eval/data/amc23), verbatim.
AMC23_ROWS = (
    '{"id":0,"problem":"Cities $A$ and $B$ are $45$ miles apart. Alicia lives in $A$ and Beth lives in $B$. Alicia '
    'bikes towards $B$ at 18 miles per hour. Leaving at the same time, Beth bikes toward $A$ at 12 miles per hour. '
    'How many miles from City $A$ will they be when they meet?","answer":27.0,"url":"https:\\/\\/artofproblemsolving'
    '.com\\/wiki\\/index.php\\/2023_AMC_12A_Problems\\/Problem_1","question":"Cities $A$ and $B$ are $45$ miles '
    'apart. Alicia lives in $A$ and Beth lives in $B$. Alicia bikes towards $B$ at 18 miles per hour. Leaving at the '
    'same time, Beth bikes toward $A$ at 12 miles per hour. How many miles from City $A$ will they be when they '
    'meet?"}\n'
    '{"id":1,"problem":"Positive real numbers $x$ and $y$ satisfy $y^3=x^2$ and $(y-x)^2=4y^2$. What is $x+y$?",'
    '"answer":36.0,"url":"https:\\/\\/artofproblemsolving.com\\/wiki\\/index.php\\/2023_AMC_12A_Problems\\/Problem_10'
    '","question":"Positive real numbers $x$ and $y$ satisfy $y^3=x^2$ and $(y-x)^2=4y^2$. What is $x+y$?"}\n'
)

GSM8K_Q0 = ("Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
            "her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh "
            "duck egg. How much in dollars does she make every day at the farmers' market?")
MATH_Q0 = ("Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your answer in the form "
           "$(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$")

# FuseEval Math-Eval/utils.py PROMPT_TEMPLATES, rendered (fuseeval_settings.md section 2), split at <QUESTION>.
RENDERED = {
    "llama3": ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nPlease reason step by step, and put "
               "your final answer within \\boxed{}.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
               "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
    "qwen25": ("<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}."
               "<|im_end|>\n<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"),
    "gemma2": ("<start_of_turn>user\n",
               "\nPlease reason step by step, and put your final answer within \\boxed{}.<end_of_turn>\n"
               "<start_of_turn>model\n"),
}


@pytest.fixture(scope="module")
def gsm8k():
    return fm.load(GSM8K_QWEN)


@pytest.fixture(scope="module")
def math500():
    return fm.load(MATH500)


def by_id(items, item_id):
    return next(item for item in items if item["id"] == item_id)


def write(tmp_path, text, name="test.jsonl"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_the_real_files(gsm8k, math500):
    openai = fm.load(GSM8K_OPENAI)
    assert len(gsm8k) == len(openai) == 1319 and len(math500) == 500
    assert gsm8k == openai  # the openai copy has no idx; ids fall back to the 0-based row, which is idx
    assert gsm8k[0] == {"id": "0", "dataset": "gsm8k", "question": GSM8K_Q0, "gold": "18",
                        "solution": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = "
                                    "$<<9*2=18>>18 every day at the farmer\u2019s market."}
    assert by_id(gsm8k, "146")["gold"] == "2125"  # "#### 2,125"
    assert math500[0]["id"] == "test/precalculus/807.json" and math500[0]["question"] == MATH_Q0
    assert math500[0]["gold"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert by_id(math500, "test/precalculus/1300.json")["gold"] == \
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}"


def test_math_gold_falls_back_to_the_last_box(tmp_path):
    row = MATH500.read_text(encoding="utf-8").splitlines()[0].replace('"answer": ', '"final": ')
    item = fm.load(write(tmp_path, row + "\n"))[0]
    assert item["gold"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    # Qwen2.5-Math's field names: the box of gt_cot is the gold (not gt), as FuseEval's parse_ground_truth takes it.
    row = json.loads(row.replace('"solution": ', '"gt_cot": ').replace('"unique_id"', '"idx"'))
    row["gt"] = "999"
    item = fm.load(write(tmp_path, json.dumps(row) + "\n"), "math")[0]
    assert item["gold"] == "\\left( 3, \\frac{\\pi}{2} \\right)" and item["id"] == "test/precalculus/807.json"


@pytest.mark.parametrize("family", fm.FAMILIES)
def test_exact_prompts_for_real_items(family, gsm8k, math500):
    head, tail = RENDERED[family]
    assert fm.build_prompt(gsm8k[0], family) == head + GSM8K_Q0 + tail
    assert fm.build_prompt(math500[0], family, tokenizer=None) == head + MATH_Q0 + tail


def test_yes_no_gold_adds_fuseevals_hint(tmp_path):
    row = '{"question": "Is 7 prime?", "answer": "7 has no divisors but 1 and itself.\\n#### Yes", "idx": 0}\n'
    assert fm.load(write(tmp_path, row))[0]["question"] == "Is 7 prime? (Yes or No)"


def test_decoding_per_family():
    assert fm.decoding("qwen25") == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 2048, "n": 1,
                                     "stop": ["<|im_end|>", "<|endoftext|>"], "stop_token_ids": [151645, 151643],
                                     "max_model_len": 4096}
    assert fm.decoding("llama3")["stop"] == ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"]
    assert fm.decoding("llama3")["stop_token_ids"] == [128001, 128008, 128009]
    assert fm.decoding("gemma2")["stop"] == ["<eos>", "<end_of_turn>"]
    with pytest.raises(UserError, match="mistral"):
        fm.decoding("mistral")
    with pytest.raises(UserError, match="unknown prompt family"):
        fm.build_prompt({"question": "1+1?"}, "llama2")


@pytest.mark.parametrize("text, expected", [
    ("So she makes $\\boxed{18}$ dollars.", "18"),
    ("First \\boxed{3}, then on reflection \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),  # the last box
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),  # nested braces
    ("so $\\boxed 5$ eggs", "5"),  # no brace: up to the next $
    ("The answer is: 18.", "18"),  # leading ':' and trailing '.' cut
    ("Thus the final answer is 42\n", "42"),
    ("所以答案是 7", "7"),
    ("She has 3 apples, then buys 1,200 more", "1200"),  # the last number, commas dropped
    ("The answer is\n1\n/", "1"),  # newlines removed, then the trailing '/'
    ("The answer is 2,125.", "2125"),  # thousands separator
    ("The answer is 18 dollars.", "18"),
    ("\\boxed{\\text{Evelyn}}", "Evelyn"),
    ("Cut off mid-box: \\boxed{12", "12"),
    ("I cannot solve this.", None),
])
def test_extract_answer(text, expected):
    assert fm.extract_answer(text) == expected


@pytest.mark.parametrize("item_id, response, correct", [
    ("0", "She makes 9 * 2 = 18 dollars.\nThe final answer is $\\boxed{18}$.", True),
    ("0", "So the answer is \\boxed{\\$18.00}.", True),
    ("0", "9 eggs at $2 each: she makes 18 dollars a day.", True),  # no box, no phrase: the last number
    ("0", "The answer is \\boxed{19}.", False),
    ("0", "The answer is 18.5", False),
    ("146", "\\boxed{2125}", True),
    ("146", "The answer is 2,125 blocks.", True),
])
def test_grade_real_gsm8k_rows(gsm8k, item_id, response, correct):
    result = fm.grade(by_id(gsm8k, item_id), response)
    assert result["correct"] is correct, result


@pytest.mark.parametrize("item_id, pred, correct", [
    ("test/precalculus/807.json", "(3, \\frac{\\pi}{2})", True),
    ("test/precalculus/807.json", "(3, \\pi)", False),
    ("test/prealgebra/1302.json", "11\\sqrt{2}", True),
    ("test/prealgebra/1302.json", "\\sqrt{242}", True),
    ("test/prealgebra/1302.json", "11\\sqrt{3}", False),
    ("test/algebra/1098.json", "6+9i", True),
    ("test/algebra/1098.json", "9i+6", True),
    ("test/number_theory/847.json", "4210_5", True),  # gold 4210_{5}
    ("test/number_theory/847.json", "4210", True),
    ("test/number_theory/847.json", "4210_6", False),  # math-verify alone would drop the subscript
    ("test/precalculus/1300.json", "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", True),
    ("test/precalculus/1300.json", "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 4/3 \\end{pmatrix}", False),
])
def test_grade_real_math500_rows(math500, item_id, pred, correct):
    result = fm.grade(by_id(math500, item_id), f"Hence the answer is $\\boxed{{{pred}}}$.")
    assert result["correct"] is correct, result


def test_amc23_rows_in_the_released_format(tmp_path):
    items = fm.load(write(tmp_path, AMC23_ROWS))
    assert [(i["id"], i["dataset"], i["gold"]) for i in items] == [("0", "amc23", "27"), ("1", "amc23", "36")]
    assert items[1]["question"] == "Positive real numbers $x$ and $y$ satisfy $y^3=x^2$ and $(y-x)^2=4y^2$. " \
                                   "What is $x+y$?"
    assert fm.grade(items[0], "They meet after 1.5 hours, so \\boxed{27} miles from $A$.")["correct"]
    assert fm.grade(items[0], "\\boxed{27.0}")["correct"]
    assert not fm.grade(items[0], "\\boxed{18}")["correct"]
    assert fm.grade(items[1], fm.oracle_response(items[1]))["correct"]
    assert not fm.grade(items[1], fm.wrong_response(items[1]))["correct"]


@pytest.mark.parametrize("source, line_no, field, edit", [
    (GSM8K_QWEN, 3, "answer", lambda line: line.replace("####", "==")),
    (GSM8K_QWEN, 2, "question", lambda line: line.replace('"question":', '"query":')),
    (MATH500, 3, "solution", lambda line: line.replace('"solution": ', '"sol": ')),
    (MATH500, 2, "answer", lambda line: line.replace('"answer": "', '"answer": 7, "x": "')),
])
def test_bad_row_names_file_row_and_field(tmp_path, source, line_no, field, edit):
    lines = source.read_text(encoding="utf-8").splitlines()[:4]
    lines[line_no - 1] = edit(lines[line_no - 1])
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(UserError) as err:
        fm.load(path)
    assert str(path) in str(err.value) and f"row {line_no}" in str(err.value) and repr(field) in str(err.value)


def test_bad_amc23_answer_and_bad_json(tmp_path):
    path = write(tmp_path, AMC23_ROWS.replace('"answer":36.0', '"answer":"36"'))
    with pytest.raises(UserError, match=r"row 2: field 'answer'"):
        fm.load(path)
    path = write(tmp_path, AMC23_ROWS[:-20] + "\n", name="cut.jsonl")
    with pytest.raises(UserError, match=r"cut.jsonl: row 2: not valid JSON"):
        fm.load(path)


def test_oracle_and_wrong_on_a_sample_of_real_rows(gsm8k, math500):
    sample = gsm8k[::100] + math500[::25]
    assert all(fm.grade(item, fm.oracle_response(item))["correct"] for item in sample)
    assert not any(fm.grade(item, fm.wrong_response(item))["correct"] for item in sample)


@pytest.mark.slow
@pytest.mark.parametrize("path", [GSM8K_QWEN, GSM8K_OPENAI, MATH500], ids=["gsm8k-qwen", "gsm8k-openai", "math500"])
def test_oracle_and_wrong_on_whole_sets(path):
    start = time.perf_counter()
    items = fm.load(path)
    right = sum(fm.grade(item, fm.oracle_response(item))["correct"] for item in items)
    wrong = sum(fm.grade(item, fm.wrong_response(item))["correct"] for item in items)
    # Every gold must also hold up in math-verify alone (not just as equal text): a model writes it its own way.
    parsed = sum(fm.math_verify_equal(fm.extract_answer(fm.oracle_response(item)), item["gold"]) for item in items
                 if not fm.BASE.search(item["gold"]))
    assert right >= 0.99 * len(items) and wrong <= 0.01 * len(items)
    assert parsed >= 0.99 * sum(not fm.BASE.search(item["gold"]) for item in items)
    assert time.perf_counter() - start < 120
