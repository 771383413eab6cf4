"""The SmolLM2 profile's world (fusechat_utils/real_world.py): real rows, in the datasets' schemas, that 01 reads
with the same adapters as the hub's rows; held-out GSM8K rows only; MBPP tasks whose reference code passes."""

import pytest

from fusechat_utils import real_world
from fusechat_utils.io import read_jsonl
from fusechat_utils.prompt_sources import DATASETS, check_row
from fusechat_utils.verify import extract_code, run_code_many


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smollm2_world")
    counts = real_world.write_fixtures(folder)
    return folder, counts


def _adapted(folder, name):
    spec = DATASETS[name]
    rows = read_jsonl(folder / spec.fixture_name)
    for index, row in enumerate(rows):
        check_row(spec, row, "smollm2 world", index)
    return rows, [spec.adapt(row) for row in rows]


def test_the_world_holds_the_counted_real_rows(fixtures):
    _, counts = fixtures
    assert counts == {"UltraFeedback": 1, "Magpie-Pro-DPO-100K-v0.1": 5, "OpenMathInstruct-2": 2 + 319,
                      "alpaca_gpt4_zh": 30, "self-oss-instruct-sc2-exec-filter-50k": 351}


def test_math_prompts_are_gsm8k_rows_that_07_never_reads(fixtures):
    folder, _ = fixtures
    rows, adapted = _adapted(folder, "OpenMathInstruct-2")
    gsm8k = read_jsonl(real_world.GSM8K)
    seen = {row["question"]: index for index, row in enumerate(gsm8k)}
    held = [row for row in rows if row["problem_source"] == "gsm8k_test_heldout"]
    assert len(held) == 319 and all(seen[row["problem"]] >= real_world.HELDOUT_GSM8K for row in held)
    first = next(a for r, a in zip(rows, adapted) if r["problem_source"] == "gsm8k_test_heldout")
    assert first["prompt"] == gsm8k[1000]["question"]
    assert first["gold_answer"] == gsm8k[1000]["answer"].rsplit("####", 1)[1].strip().replace(",", "")


def test_code_prompts_carry_mbpp_train_tests_that_the_reference_passes(fixtures):
    folder, _ = fixtures
    rows, adapted = _adapted(folder, "self-oss-instruct-sc2-exec-filter-50k")
    assert all(row["mbpp_task_id"] in real_world.MBPP_TRAIN for row in rows)
    assert all(a["tests"] and a["entry_point"] and a["tests"].count("assert ") >= 1 for a in adapted)
    assert all(f"def {a['entry_point']}(" in row["response"] for row, a in zip(rows, adapted))
    # every 5th task through the kit's grader (all 351 pass; 22 s): the reference solves it, the previous task's
    # code does not
    sample = list(zip(rows, adapted))[::5]
    items = [(extract_code(row["response"].split("Tests:")[0]), a["tests"]) for row, a in sample]
    swapped = [(items[i - 1][0], tests) for i, (_, tests) in enumerate(items)]
    verdicts = run_code_many(items + swapped, timeout_s=60, workers=2)
    assert [v.reason for v in verdicts[:len(items)]] == ["passed"] * len(items)
    assert not any(v.passed for v in verdicts[len(items):])
