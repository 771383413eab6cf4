"""01_prompts adapters and filters on real rows of the source datasets (tests/fixtures/real_samples/)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fusechat_utils.prompt_sources import DATASETS, SchemaError
from fusechat_utils.prompts import PromptsConfig, looks_like_code_or_math, normalize, run

REAL = Path(__file__).parent / "fixtures" / "real_samples"
REAL_DATASETS = ["UltraFeedback", "Magpie-Pro-DPO-100K-v0.1", "OpenMathInstruct-2", "alpaca_gpt4_zh"]


def config(tmp_path, fixtures, datasets, **kw):
    return PromptsConfig(run_dir=str(tmp_path / "run"), prompts_fixtures_dir=str(fixtures),
                         prompts_datasets=datasets, **kw)


@pytest.fixture
def real_dir(tmp_path):
    out = tmp_path / "real"
    out.mkdir()
    for name in REAL_DATASETS:
        shutil.copy(REAL / DATASETS[name].fixture_name, out / DATASETS[name].fixture_name)
    return out


def test_real_rows_are_adapted_filtered_and_counted(tmp_path, real_dir):
    result = run(config(tmp_path, real_dir, REAL_DATASETS))
    table = result["selection"].set_index("dataset")
    df = result["prompts"]
    # The one UltraFeedback row (a Cairo trip) is a general prompt: kept.
    assert table.loc["UltraFeedback", "kept"] == 1
    # All 5 Magpie rows are task_category "Coding & Debugging": the general set drops them.
    assert table.loc["Magpie-Pro-DPO-100K-v0.1", "dropped_code_or_math"] == 5
    # OpenMathInstruct-2 keeps its gold answer and the 405B solution as the reference response.
    math = df[df.dataset == "OpenMathInstruct-2"].iloc[0]
    assert math.gold_answer == "2" and "\\boxed{2}" in math.reference_response
    assert math.reference_model == "Llama-3.1-405B-Instruct" and math.category == "math"
    zh = table.loc["alpaca_gpt4_zh"]
    assert zh["read"] == 30 and zh["dropped_code_or_math"] >= 6 and zh["kept"] >= 10
    assert (df[df.dataset == "alpaca_gpt4_zh"].language == "zh").all()
    assert df.prompt_id.is_unique and len(df.prompt_id.iloc[0]) == 16
    written = pd.read_parquet(tmp_path / "run" / "01_prompts" / "prompts.parquet")
    assert list(written.prompt_id) == list(df.prompt_id)
    assert (tmp_path / "run" / "01_prompts" / "selection.csv").is_file()


def test_alpaca_prompt_joins_instruction_and_input(tmp_path, real_dir):
    df = run(config(tmp_path, real_dir, ["alpaca_gpt4_zh"]))["prompts"]
    row = json.loads((real_dir / DATASETS["alpaca_gpt4_zh"].fixture_name).read_text().splitlines()[1])
    joined = [p for p in df.prompt if p.startswith(row["instruction"])]
    assert joined and row["input"] in joined[0]


def test_a_missing_column_names_dataset_file_row_and_column(tmp_path, real_dir):
    path = real_dir / DATASETS["OpenMathInstruct-2"].fixture_name
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    del rows[1]["expected_answer"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(SchemaError, match=r"OpenMathInstruct-2 \(.*nvidia__OpenMathInstruct-2.jsonl\) row 1: "
                                          r"missing column 'expected_answer'"):
        run(config(tmp_path, real_dir, ["OpenMathInstruct-2"]))


def test_a_wrong_type_names_the_column_and_nothing_is_written(tmp_path, real_dir):
    path = real_dir / DATASETS["UltraFeedback"].fixture_name
    row = json.loads(path.read_text())
    row["instruction"] = ["not", "a", "string"]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(SchemaError, match=r"row 0: column 'instruction' must be str, got list"):
        run(config(tmp_path, real_dir, ["UltraFeedback"]))
    assert not (tmp_path / "run" / "01_prompts" / "prompts.parquet").exists()


def test_duplicates_and_caps_are_counted_not_silent(tmp_path, real_dir):
    path = real_dir / DATASETS["alpaca_gpt4_zh"].fixture_name
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    variant = {**first, "instruction": "  " + first["instruction"].upper() + " "}
    path.write_text("\n".join(lines + [json.dumps(first, ensure_ascii=False), json.dumps(variant, ensure_ascii=False)]))
    result = run(config(tmp_path, real_dir, ["alpaca_gpt4_zh"], prompts_max_per_dataset={"alpaca_gpt4_zh": 5}))
    row = result["selection"].iloc[0]
    assert row["read"] == 32 and row["dropped_duplicate"] == 2 and row["kept"] == 5
    assert row["dropped_over_cap"] == row["read"] - 5 - row[[c for c in row.index if c.startswith("dropped_")
                                                              and c != "dropped_over_cap"]].sum()


def test_cap_subset_is_seeded(tmp_path, real_dir):
    kw = dict(prompts_max_per_dataset={"alpaca_gpt4_zh": 4})
    a = run(config(tmp_path / "a", real_dir, ["alpaca_gpt4_zh"], prompts_seed=1, **kw))["prompts"].prompt_id.tolist()
    b = run(config(tmp_path / "b", real_dir, ["alpaca_gpt4_zh"], prompts_seed=1, **kw))["prompts"].prompt_id.tolist()
    c = run(config(tmp_path / "c", real_dir, ["alpaca_gpt4_zh"], prompts_seed=2, **kw))["prompts"].prompt_id.tolist()
    assert a == b and a != c


def test_unknown_dataset_name_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset name"):
        PromptsConfig(prompts_datasets=["UltraFeedbak"])


def test_heuristic_flags_code_and_math_in_both_languages():
    assert looks_like_code_or_math("Write a Python function that sorts a list")
    assert looks_like_code_or_math("Solve the equation $x^2 = 4$")
    assert looks_like_code_or_math("请计算 12 + 30 等于多少")
    assert looks_like_code_or_math("用Python编写一个程序")
    assert not looks_like_code_or_math("Plan a four-day family trip to Cairo")
    assert not looks_like_code_or_math("写一首关于春天的诗")
    assert normalize("  Hello,   WORLD! ") == "hello world"


def test_streaming_cap_keeps_the_rows_the_in_memory_sample_kept(tmp_path):
    """01 streams (re-reading only the rows its cap keeps); the subset is DataFrame.sample's, as before streaming."""
    fx = tmp_path / "fx"
    fx.mkdir()
    texts = [f"写一首关于第{i % 300}个春天的诗" for i in range(500)]  # 300 distinct, 200 repeats
    with open(fx / DATASETS["alpaca_gpt4_zh"].fixture_name, "w") as fh:
        fh.write("\ufeff")  # a BOM on line 1 is allowed, and the re-read skips it
        for text in texts:
            fh.write(json.dumps({"instruction": text, "input": "", "output": "x"}, ensure_ascii=False) + "\n")
    for cap, seed in ((37, 0), (37, 5), (299, 1), (300, 0), (None, 0)):
        result = run(config(tmp_path / f"{cap}-{seed}", fx, ["alpaca_gpt4_zh"], prompts_seed=seed,
                            prompts_max_per_dataset={"alpaca_gpt4_zh": cap}))
        survivors = pd.DataFrame({"prompt": list(dict.fromkeys(texts))})
        if cap is not None and len(survivors) > cap:
            survivors = survivors.sample(n=cap, random_state=seed).sort_index()
        assert result["prompts"]["prompt"].tolist() == survivors["prompt"].tolist(), (cap, seed)
        row = result["selection"].iloc[0]
        assert (row["read"], row["dropped_duplicate"], row["kept"]) == (500, 200, len(survivors))
        assert row["dropped_over_cap"] == 300 - len(survivors)
