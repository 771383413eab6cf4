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


def test_parallel_runs_share_01_03_then_run_jobs_at_once_with_fixed_threads(tmp_path, monkeypatch):
    """`--jobs`: the first run's 01-03 alone, then every run as its own `fusechat run`, `jobs` at once, each with
    cores // jobs threads and its variant's values passed so `--set` reads them back; a failed run lets the others
    finish, then the sweep names it and its log."""
    import threading
    import time

    from fusechat_utils import sweep
    from fusechat_utils.config import parse_set

    calls, running, peak, lock = [], [0], [0], threading.Lock()

    def fake_run(cmd, cwd, env, stdout, stderr):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            calls.append((cmd, env["OMP_NUM_THREADS"]))
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        failed = "ablate/cross-seed1" in cmd and "--steps" not in cmd
        return type("Done", (), {"returncode": 3 if failed else 0})()

    monkeypatch.setattr(sweep, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(sweep.subprocess, "run", fake_run)
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 4)
    runs = [(f"ablate/{v}-seed{s}", {"pairs_exclude_sources": ["src-a"], "dpo_beta": 0.1, "seed": s})
            for v in ("paper", "cross") for s in (0, 1)]
    with pytest.raises(RuntimeError, match=r"ablate/cross-seed1 \(exit 3; .*logs/cross-seed1.log\)"):
        sweep.run_parallel("toy", "ablate", runs, None, jobs=2, log=lambda *a, **k: None)

    first = calls[0][0]
    assert first[first.index("--steps") + 1] == "01-03" and "ablate/paper-seed0" in first
    assert sorted(c[0][c[0].index("--run-name") + 1] for c in calls[1:]) == sorted(r for r, _ in runs)
    assert {threads for _, threads in calls} == {"2"} and peak[0] == 2
    for cmd, _ in calls:
        sets = parse_set([cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"])
        assert sets == dict(runs)[cmd[cmd.index("--run-name") + 1]]
    assert (tmp_path / "outputs" / "ablate" / "logs").is_dir()


def test_gains_pair_each_seed_before_and_after():
    from fusechat_utils.sweep import gains

    rows = [{"variant": "v", "stage": stage, "benchmark": "b", "metric": "m", "value": value, "seed": s}
            for s, (sft, dpo) in enumerate([(50.0, 52.0), (60.0, 61.0), (40.0, 43.0)])
            for stage, value in [("sft", sft), ("dpo", dpo)]]
    got = gains(pd.DataFrame(rows)).iloc[0]
    # paired gains 2, 1, 3: mean 2, std 1, stderr 1/sqrt(3) = 0.577; the unpaired spreads (~10) would hide it
    assert got["gain"] == pytest.approx(2.0) and got["stderr"] == pytest.approx(0.577, abs=1e-3)
    assert got["above_2se"] and got["n_seeds"] == 3
