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


def test_our_table_has_stage_columns_and_marks_the_missing_paper_benchmarks_instead_of_averaging(run_dir):
    table = tables.benchmark_table(run_dir)
    assert list(table.columns) == ["ours: base", "ours: SFT", "ours: SFT+DPO"]
    assert table.loc["GSM8K", "ours: SFT+DPO"] == 58.0
    # GSM8K and HumanEval are 2 of the paper's 14: no average over that subset, the 12 others are named
    for cell in table.loc["Average"]:
        assert cell.startswith("n/a (missing: AlpacaEval-2 (LC %), Arena-Hard (WR %), MT-Bench,")
        assert "GSM8K" not in cell and "HumanEval" not in cell and "LiveCodeBench 2408-2411" in cell
    note = table.attrs["note"]
    assert "exactly these 14 benchmarks" in note and "Shown but not averaged" in note and "toy_if_winrate" in note


def _results(tmp_path, benchmarks, stages=("base", "sft", "dpo"), drop=()):
    rows = [["m", stage, b, "metric", 10.0 * k + i, 10, 1.0] for k, stage in enumerate(stages)
            for i, b in enumerate(benchmarks) if (stage, b) not in drop]
    (tmp_path / "07_eval").mkdir(exist_ok=True)
    pd.DataFrame(rows, columns=RESULT_COLUMNS).to_csv(tmp_path / "07_eval" / "results.csv", index=False)
    return tmp_path


def test_the_average_is_over_exactly_the_papers_14_benchmarks_when_all_are_there(tmp_path):
    paper = tables.paper_benchmarks()
    assert len(paper) == 14 and "Average" not in paper
    table = tables.benchmark_table(_results(tmp_path, paper + ["toy_math"]), "llama3.1-8b")
    # values i = 0..13 (+10 per stage); toy_math (i = 14) is shown but not averaged
    assert table.loc["Average", "ours: base"] == 6.5 and table.loc["Average", "ours: SFT+DPO"] == 26.5
    assert table.loc["Average", "paper: SFT+DPO"] == 47.3 and table.loc["toy_math", "ours: base"] == 14.0
    assert "toy_math" in table.attrs["note"]


def test_one_missing_benchmark_in_one_stage_is_named_not_averaged_around(tmp_path):
    paper = tables.paper_benchmarks()
    table = tables.benchmark_table(_results(tmp_path, paper, drop={("dpo", "LiveBench 0831"), ("dpo", "MBPP")}),
                                   "qwen2.5-7b")
    assert table.loc["Average", "ours: SFT+DPO"] == "n/a (missing: LiveBench 0831, MBPP)"
    assert table.loc["Average", "ours: SFT"] == 16.5
    assert "ours: SFT+DPO: no average, missing: LiveBench 0831, MBPP." in table.attrs["note"]
    assert tables.deltas(table).loc["GSM8K"].tolist() == [10.0, 20.0]  # the string Average does not break deltas


def test_the_1b_table_averages_the_papers_13_without_livecodebench(tmp_path):
    thirteen = tables.paper_benchmarks("llama3.2-1b")
    assert len(thirteen) == 13 and "LiveCodeBench 2408-2411" not in thirteen
    assert len(tables.paper_benchmarks("llama3.2-3b")) == 14
    table = tables.benchmark_table(_results(tmp_path, thirteen + ["LiveCodeBench 2408-2411"]), "llama3.2-1b")
    assert table.loc["Average", "ours: base"] == 6.0  # mean of 0..12; LCB (13) shown, not averaged
    assert "13 benchmarks" in table.attrs["note"] and "LiveCodeBench 2408-2411" in table.attrs["note"]
    table = tables.benchmark_table(_results(tmp_path, thirteen[:-1]), "llama3.2-1b")
    assert table.loc["Average", "ours: base"] == f"n/a (missing: {thirteen[-1]})"


def test_a_toy_run_averages_its_toy_benchmarks_but_not_the_win_rate_against_the_base(tmp_path):
    rows = [["m", s, b, "accuracy", v + k, 4, 1.0] for k, s in enumerate(("base", "sft", "dpo"))
            for b, v in (("toy_math", 10.0), ("toy_code", 30.0))]
    rows.append(["m", "sft", "toy_if_winrate", "win_rate_vs_base", 60.0, 4, 5.0])
    (tmp_path / "07_eval").mkdir()
    pd.DataFrame(rows, columns=RESULT_COLUMNS).to_csv(tmp_path / "07_eval" / "results.csv", index=False)
    table = tables.benchmark_table(tmp_path)
    assert table.loc["Average"].tolist() == [20.0, 21.0, 22.0]
    assert "toy_if_winrate" in table.attrs["note"]
    # beside a paper target too: a run without any paper benchmark keeps its toy average
    table = tables.benchmark_table(tmp_path, "llama3.2-1b")
    assert table.loc["Average", "ours: SFT"] == 21.0 and table.loc["Average", "paper: SFT"] == 24.5


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
    text = out.read_text()
    assert "ours: SFT+DPO" in text and "Average (ours) over exactly these 14 benchmarks" in text
    assert "n/a (missing: AlpacaEval-2 (LC %)" in text


def test_a_missing_results_file_says_which_step_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run step 07_eval"):
        tables.benchmark_table(tmp_path)


def test_the_whole_paper_table_has_every_column_of_the_targets_table_with_ours_beside(run_dir):
    big = tables.full_paper_table(run_dir, "qwen2.5-7b")
    assert "Llama-3.1-Tulu-3-8B" in big.columns and "FuseChat-gemma2-9b-Instruct" in big.columns
    assert big.loc["GSM8K", "ours: SFT+DPO"] == 58.0 and big.loc["GSM8K", "Llama-3.1-Tulu-3-8B"] == 88.6
    assert "Average" in big.index and len(big) == 15
    small = tables.full_paper_table(run_dir, "llama3.2-1b")
    assert list(small.columns[3:]) == tables.PAPER_TABLES["1-3B targets"]


def test_figure1_draws_the_papers_8b_gains_and_ours_where_we_have_them(run_dir):
    import matplotlib

    matplotlib.use("Agg")
    ax = tables.figure1(tables.benchmark_table(run_dir, "llama3.1-8b"))
    bars = [b.get_height() for b in ax.patches]
    assert len(bars) == 14 and bars[0] == pytest.approx(65.4 - 28.3)  # AlpacaEval-2 LC: 28.3 -> 65.4
    (ours,) = [line for line in ax.lines if line.get_label() == "ours: SFT+DPO - base"]
    got = dict(zip(tables.paper_benchmarks(), ours.get_ydata()))
    assert got["GSM8K"] == 8.0 and got["HumanEval"] == 4.0 and sum(pd.notna(list(got.values()))) == 2
