"""The paper-format benchmark table from a results.csv, the paper's columns beside it, deltas, the analysis notebook."""

import pandas as pd
import papermill
import pytest

from fusechat_utils.evaluation import tables
from fusechat_utils.evaluation.step import RESULT_COLUMNS
from fusechat_utils.steps import NOTEBOOKS_DIR


@pytest.fixture()
def run_dir(tmp_path):
    rows = []
    for stage, shift in (("base", 0.0), ("sft", 5.0), ("dpo", 8.0)):
        rows += [["m", stage, "GSM8K", "exact_match", 50.0 + shift, 10, 1.0],
                 ["m", stage, "HumanEval", "pass@1", 20.0 + shift / 2, 164, 3.0]]
    rows.append(["m", "sft", "toy_if_winrate", "win_rate_vs_base", 60.0, 4, 5.0])
    (tmp_path / "07_eval").mkdir()
    pd.DataFrame(rows, columns=RESULT_COLUMNS).to_csv(tmp_path / "07_eval" / "results.csv", index=False)
    return tmp_path


def test_our_table_has_stage_columns_and_an_average_over_complete_rows(run_dir):
    table = tables.benchmark_table(run_dir)
    assert list(table.columns) == ["ours: base", "ours: SFT", "ours: SFT+DPO"]
    assert table.loc["GSM8K", "ours: SFT+DPO"] == 58.0
    # toy_if_winrate has no base/dpo value, so it is left out of the average
    assert table.loc["Average"].tolist() == [35.0, 38.8, 41.0]


def test_paper_columns_sit_beside_ours_for_the_chosen_target(run_dir):
    table = tables.benchmark_table(run_dir, "llama3.1-8b")
    assert table.loc["GSM8K", "paper: base"] == 85.9 and table.loc["GSM8K", "paper: SFT+DPO"] == 88.0
    assert table.loc["MT-Bench", "paper: SFT"] == 8.54 and pd.isna(table.loc["MT-Bench", "ours: SFT"])
    assert table.index[-1] == "Average" and table.loc["Average", "paper: SFT+DPO"] == 47.3
    with pytest.raises(ValueError, match="paper_target 'llama9'"):
        tables.benchmark_table(run_dir, "llama9")


def test_deltas_and_plot(run_dir):
    table = tables.benchmark_table(run_dir, "qwen2.5-7b")
    ours = tables.deltas(table, "ours")
    assert ours.loc["GSM8K"].tolist() == [5.0, 8.0] and ours.loc["HumanEval"].tolist() == [2.5, 4.0]
    assert tables.deltas(table, "paper").loc["HumanEval", "SFT - base"] == pytest.approx(81.7 - 85.4)
    assert tables.plot_deltas(table).get_title().startswith("Per-benchmark")


def test_the_analysis_notebook_runs_on_a_results_folder(run_dir, tmp_path):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS_DIR / "analysis" / "benchmark_tables.ipynb"), str(out),
                               parameters={"run_dir": str(run_dir), "paper_target": "gemma2-9b"}, progress_bar=False)
    assert "ours: SFT+DPO" in out.read_text()


def test_a_missing_results_file_says_which_step_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run step 07_eval"):
        tables.benchmark_table(tmp_path)
