"""The README's demo path: `fusechat run --profile toy` over all 7 notebooks, then a re-run that skips them all."""

import subprocess
import sys

import pandas as pd
import pytest
from conftest import PIPELINE_TIMEOUT_S

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.io import read_json
from fusechat_utils.steps import STEPS


def fusechat(*args):
    return subprocess.run([sys.executable, "-m", "fusechat_utils", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=PIPELINE_TIMEOUT_S)


@pytest.mark.slow
def test_toy_pipeline_runs_end_to_end_then_skips(toy_run):
    run_dir, first = toy_run  # conftest: `fusechat run --profile toy` into a temporary folder, once per session
    assert all(f"{step} ran (" in first.stdout for step in STEPS), first.stdout[-3000:]
    for step in STEPS:
        manifest = read_json(run_dir / step / "manifest.json")
        assert manifest["outputs"], f"{step} wrote nothing"
        assert (run_dir / step / f"{step}.ipynb").is_file()
    prompts = pd.read_parquet(run_dir / "01_prompts" / "prompts.parquet")
    assert set(prompts.category) == {"general", "math", "code", "chinese"}
    scored = pd.read_parquet(run_dir / "03_scoring" / "scored.parquet")
    assert scored.rm_score.notna().all()
    assert len(pd.read_parquet(run_dir / "04_pairs" / "sft.parquet")) > 0
    assert len(pd.read_parquet(run_dir / "04_pairs" / "dpo.parquet")) > 0
    results = pd.read_csv(run_dir / "07_eval" / "results.csv")
    assert {"base", "sft", "dpo"} <= set(results.stage)
    # Implicit fusion works: the SFT target beats the base target where the sources are strong. Seed 0 here (two
    # threads): math 0.0 -> 40.1 %, instruction-level 25.2 -> 59.0 %, code 3.5 -> 11.5 %; the demo's seeds 0-2 (one
    # thread each): math 29.6-40.1, instruction-level 49.1-59.0, code 11.5-21.0.
    value = results.set_index(["stage", "benchmark"])["value"]
    for bench, margin in (("toy_math", 10), ("toy_general_if", 15), ("toy_code", 4)):
        assert value["sft", bench] > value["base", bench] + margin, (bench, value[:, bench].to_dict())

    again = fusechat("run", "--profile", "toy", "--set", f"run_dir={run_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(" skipped (") == len(STEPS)
