"""Toy benchmarks: rows in the toy world's schema scored per domain with oracle and wrong answers; RM win rate."""

import json

import pytest

from eval_world import TOY_ROWS, build_models, write_toy_benchmarks
from fusechat_utils.evaluation import toy, winrate

ORACLE = ["First 2 + 3 = 5, so the answer is \\boxed{5}.", "```python\ndef add(a, b):\n    return a + b\n```",
          "cba", "Hello hello.", "CBA。"]
WRONG = ["\\boxed{6}", "```python\ndef add(a, b):\n    return a - b\n```", "abc", "hello", "abc"]


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    return toy.load_toy_benchmarks(write_toy_benchmarks(tmp_path_factory.mktemp("bench")))


def test_oracle_answers_score_and_wrong_ones_do_not(items):
    by_prompt = {row["prompt"]: i for i, row in enumerate(TOY_ROWS)}
    oracle = [ORACLE[by_prompt[it["prompt"]]] for it in items]
    wrong = [WRONG[by_prompt[it["prompt"]]] for it in items]
    assert all(r["correct"] for r in toy.score_toy(items, oracle))
    scored = toy.score_toy(items, wrong)
    assert not any(r["correct"] for r in scored)
    assert {r["benchmark"] for r in scored} == {"toy_math", "toy_code", "toy_general", "toy_chinese"}


def test_rows_keep_their_family_and_bad_rows_name_file_line_and_field(items, tmp_path):
    assert {it["family"] for it in items} == {"arith", "funcs", "reverse", "zh_reverse"}
    bad = tmp_path / "fam.jsonl"
    bad.write_text(json.dumps(TOY_ROWS[0]) + "\n" + json.dumps({**TOY_ROWS[0], "category": "poetry"}) + "\n")
    with pytest.raises(ValueError, match=r"fam\.jsonl: line 2: field 'category'"):
        toy.load_toy_benchmarks(tmp_path)
    with pytest.raises(FileNotFoundError, match="toy-world"):
        toy.load_toy_benchmarks(tmp_path / "empty")


def test_reward_model_scores_and_win_counting(tmp_path):
    paths = build_models(tmp_path)
    prompts = ["Reverse the word abc.", "Say hello twice."]
    a = winrate.reward_scores(paths["reward"], prompts, ["cba", "hello hello"])
    b = winrate.reward_scores(paths["reward"], prompts, ["cba", "hello hello"], batch_size=1)
    assert a == pytest.approx(b, abs=1e-5)  # padding does not change a score
    assert winrate.pairwise_wins([1.0, 0.0, 2.0], [0.5, 0.0, 3.0]) == [1.0, 0.5, 0.0]
    assert winrate.mean_stderr([1.0, 0.0]) == pytest.approx((0.5, 0.5))


def test_instruction_items_are_graded_prompt_and_instruction_level():
    from fusechat_utils.toy import tasks

    items = [{**tasks.general_item(("cab", ("quoted", "exclaim"))), "family": "general"},
             {**tasks.general_item(("abc", ("bracketed",))), "family": "general"}]
    rows = toy.score_toy(items, ['Sure!\n"cab"!', "abc"])
    assert [r["correct"] for r in rows] == [True, False]
    assert rows[0]["followed"] == {"content": True, "quoted": True, "exclaim": True}
    assert rows[1]["followed"] == {"content": True, "bracketed": False} and rows[1]["reason"] == "missed: bracketed"
