"""The README's demo path: `fusechat run --profile toy` over all 7 notebooks, then a re-run that skips them all."""

import subprocess
import sys

import pandas as pd
import pytest

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.io import read_json
from fusechat_utils.steps import STEPS

RUN = "pytest_pipeline"


def fusechat(*args):
    return subprocess.run([sys.executable, "-m", "fusechat_utils", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=1800)


@pytest.mark.slow
def test_toy_pipeline_runs_end_to_end_then_skips(toy_world):
    first = fusechat("run", "--profile", "toy", "--run-name", RUN, "--force")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    run_dir = PROJECT_ROOT / "outputs" / RUN
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
    # implicit fusion works: the SFT target beats the base target where the sources are strong
    value = results.set_index(["stage", "benchmark"])["value"]
    for bench in ("toy_math", "toy_code"):
        assert value["sft", bench] > value["base", bench] + 10, (bench, value[:, bench].to_dict())

    again = fusechat("run", "--profile", "toy", "--run-name", RUN)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(" skipped (") == len(STEPS)
