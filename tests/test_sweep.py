"""Sweeps: variant parsing, one run per (variant, seed), statistics over seeds."""

import pandas as pd
import pytest

from fusechat_utils.sweep import parse_variant, seed_stats, stats_table


def test_parse_variant():
    assert parse_variant("cross:pairs_pairing=cross_source,dpo_beta=5") == (
        "cross", {"pairs_pairing": "cross_source", "dpo_beta": 5})
    assert parse_variant("base:") == ("base", {})
    with pytest.raises(ValueError, match="NAME:key=value"):
        parse_variant("pairs_pairing=cross_source")


def test_seed_stats_and_table():
    rows = [{"variant": "v", "stage": stage, "benchmark": "toy_math", "metric": "accuracy", "value": value, "seed": s}
            for s, (base, sft) in enumerate([(0.1, 0.5), (0.2, 0.7), (0.3, 0.6)])
            for stage, value in [("base", base), ("sft", sft)]]
    stats = seed_stats(pd.DataFrame(rows)).set_index("stage")
    assert stats.loc["sft", "mean"] == pytest.approx(0.6) and stats.loc["sft", "std"] == pytest.approx(0.1)
    assert stats.loc["base", "min"] == pytest.approx(0.1) and stats.loc["base", "n_seeds"] == 3
    table = stats_table(stats.reset_index())
    assert list(table.columns) == ["variant", "benchmark", "metric", "base", "sft"]
    assert table.loc[0, "sft"] == "0.600 ± 0.100"


def test_collect_tags_runs_by_folder_name(tmp_path):
    from fusechat_utils.io import write_json
    from fusechat_utils.sweep import collect

    row = "model,stage,benchmark,metric,value,n,stderr\nm,sft,toy_math,accuracy,0.5,200,0.03\n"
    for run in ["cross_source-seed1", "seed2", "single"]:
        (tmp_path / run / "07_eval").mkdir(parents=True)
        (tmp_path / run / "07_eval" / "results.csv").write_text(row)
    write_json(tmp_path / "single" / "07_eval" / "manifest.json", {"params": {"seed": 7}})
    got = collect(tmp_path).sort_values("seed")
    assert list(zip(got.variant, got.seed)) == [("cross_source", 1), ("default", 2), ("single", 7)]
