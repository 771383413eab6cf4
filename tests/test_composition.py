"""Composition analysis: the paper-format table from a run's sets, the plots, and the analysis notebook."""

import matplotlib
import pandas as pd
import pytest

from fusechat_utils import composition, pairs
from fusechat_utils.paper import paper_table

matplotlib.use("Agg")


def scored_table():
    rows = []
    for i in range(10):
        for k, score in enumerate([0.5, 0.46, 0.2 if i % 2 else 0.44]):
            rows.append({"prompt_id": f"g{i}", "dataset": "UltraFeedback", "category": "general", "source_model": "A",
                         "sample_index": k, "prompt": f"p{i}", "response": f"r{i} {k} " * (k + 1), "rm_score": score,
                         "n_tokens": 2 * (k + 1)})
    rows.append({"prompt_id": "z", "dataset": "alpaca_gpt4_zh", "category": "chinese", "source_model": "Qwen",
                 "sample_index": 0, "prompt": "zh", "response": "zh r", "rm_score": 0.1, "n_tokens": 2})
    return pd.DataFrame(rows)


def prompts_of(scored):
    return scored.drop_duplicates("prompt_id")[["prompt_id", "dataset", "category", "prompt"]]


def test_composition_counts_our_sets_beside_the_paper():
    scored = scored_table()
    sft, dpo = pairs.build_sets(scored, gap_min=0.01, gap_max=0.1)
    table = composition.composition_table(prompts_of(scored), sft, dpo).set_index("dataset")
    assert table.loc["UltraFeedback", ["Selected", "SFT", "DPO"]].tolist() == [10, 2, 3]  # 5 valid: floor(2) / 3
    assert table.loc["alpaca_gpt4_zh", ["Selected", "SFT", "DPO"]].tolist() == [1, 1, 0]
    paper = paper_table("dataset_composition").set_index("dataset")
    assert table.loc["UltraFeedback", "paper_SFT"] == paper.loc["UltraFeedback", "sft"]
    assert table.loc["Total", ["Selected", "SFT", "DPO"]].tolist() == [11, 3, 3]
    assert table.loc["Total", "paper_DPO"] == paper.loc[["UltraFeedback", "alpaca_gpt4_zh"], "dpo"].sum()


def test_a_dataset_the_paper_lacks_has_no_paper_numbers():
    scored = scored_table().assign(dataset="MyOwnSet")
    sft, dpo = pairs.build_sets(scored)
    row = composition.composition_table(prompts_of(scored), sft, dpo).set_index("dataset").loc["MyOwnSet"]
    assert pd.isna(row["paper_Selected"]) and row["Selected"] == 11


def test_gap_table_and_plots_use_the_data():
    scored = scored_table()
    _, dpo = pairs.build_sets(scored)
    gaps = composition.gap_table(dpo).set_index("dataset")
    assert gaps.loc["UltraFeedback", "count"] == 3
    assert gaps.loc["UltraFeedback", "min"] == pytest.approx(0.06)
    ax = composition.plot_gap_hist(dpo, 0.01, 0.1)
    assert sum(p.get_height() for p in ax.patches) == 3 and len(ax.lines) == 2
    ax = composition.plot_rm_by_source(scored)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "Qwen"]
    assert composition.response_lengths(scored).tolist()[:3] == [2, 4, 6]
    assert composition.response_lengths(scored.drop(columns="n_tokens")).tolist()[:3] == [2, 4, 6]
    composition.plot_length_by_source(scored)


def test_load_run_names_the_missing_artifacts(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"04_pairs/sft\.parquet"):
        composition.load_run(tmp_path)


def test_the_analysis_notebook_runs_on_a_run_folder(tmp_path):
    import papermill

    scored = scored_table()
    for step in ("01_prompts", "03_scoring"):
        (tmp_path / step).mkdir()
    prompts_of(scored).to_parquet(tmp_path / "01_prompts" / "prompts.parquet")
    scored.to_parquet(tmp_path / "03_scoring" / "scored.parquet")
    pairs.run(pairs.PairsConfig(run_dir=str(tmp_path), pairs_gap_min=0.01, pairs_gap_max=0.1))
    nb = papermill.execute_notebook(composition.NOTEBOOK, str(tmp_path / "out.ipynb"),
                                    parameters={"run_dir": str(tmp_path)}, progress_bar=False, kernel_name="python3")
    (table_cell,) = [c for c in nb.cells if "composition_table(" in c.source]
    assert "UltraFeedback" in table_cell.outputs[0]["data"]["text/plain"]
