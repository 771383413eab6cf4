"""Parameter sweeps: the same profile over seeds and ablation variants, one run each, one summary table.

Usage:
    fusechat sweep --profile toy --name toy --seeds 0,1,2
    fusechat sweep --profile toy --name ablations --seeds 0,1,2 \
        --variant same_source: --variant cross_source:pairs_pairing=cross_source \
        --variant plain_dpo:dpo_loss_type=sigmoid

Each (variant, seed) is a normal `fusechat run` into `outputs/<name>/<variant>-seed<k>/` (`seed<k>/` without variants) (so unchanged steps are
skipped on a re-run); `outputs/<name>/summary.csv` holds every run's evaluation rows and `summary_stats.csv` their
mean, std, min and max over seeds per variant, stage and benchmark.

`--jobs N` runs N runs at once, each `fusechat run` in its own process with OMP_NUM_THREADS = cores // N (fixed
for every run, so a run's numbers do not depend on which runs it happened to share the machine with); the first
run's steps 01-03, which every seed and variant shares (`seed` starts at 04), run alone first, so the others
copy them instead of computing them N times. Each run's log: `outputs/<name>/logs/<run>.log`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from fusechat_utils.config import PROJECT_ROOT, ParamError, parse_set
from fusechat_utils.io import atomic_path, read_json
from fusechat_utils.runner import run_pipeline


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """'cross:pairs_pairing=cross_source,dpo_beta=5' -> ('cross', {...}); 'base:' -> ('base', {})."""
    name, sep, sets = spec.partition(":")
    if not sep or not name:
        raise ParamError(f"--variant {spec!r}: expected NAME:key=value,key=value (or NAME: for no change)")
    return name, parse_set([s for s in sets.split(",") if s])


def run_sweep(profile: str, name: str, seeds: list[int], variants: dict[str, dict[str, Any]] | None = None,
              overrides: dict[str, Any] | None = None, steps: str | None = None, log=print, jobs: int = 1
              ) -> pd.DataFrame:
    """Run every (variant, seed), `jobs` at a time; return and write the concatenated evaluation results."""
    runs = [(f"{name}/{variant + '-' if variant else ''}seed{seed}", {**(overrides or {}), **sets, "seed": seed})
            for variant, sets in (variants or {"": {}}).items() for seed in seeds]
    if jobs <= 1:
        for run_name, sets in runs:
            log(f"=== {run_name} ===", flush=True)
            run_pipeline(profile, steps, sets, run_name=run_name, log=log)
    else:
        run_parallel(profile, name, runs, steps, jobs, log)
    out = PROJECT_ROOT / "outputs" / name
    summary = collect(out)
    with atomic_path(out / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    if len(summary):
        with atomic_path(out / "summary_stats.csv") as tmp:
            seed_stats(summary).to_csv(tmp, index=False)
    return summary


def run_parallel(profile: str, name: str, runs: list[tuple[str, dict[str, Any]]], steps: str | None, jobs: int,
                 log=print) -> None:
    """Each run a `fusechat run` subprocess, `jobs` at once; a failed run lets the others finish, then raises."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}
    logs = PROJECT_ROOT / "outputs" / name / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def launch(run: tuple[str, dict[str, Any]], run_steps: str | None) -> str | None:
        run_name, sets = run
        cmd = [sys.executable, "-m", "fusechat_utils", "run", "--profile", profile, "--run-name", run_name,
               *(["--steps", run_steps] if run_steps else []),
               *[arg for k, v in sets.items() for arg in ("--set", f"{k}={json.dumps(v)}")]]
        log_path = logs / f"{run_name.split('/', 1)[1]}.log"
        log(f"=== {run_name} (log: {log_path.relative_to(PROJECT_ROOT)}) ===", flush=True)
        with open(log_path, "a") as out:
            code = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        log(f"=== {run_name} {'done' if code == 0 else f'FAILED (exit {code})'} ===", flush=True)
        return None if code == 0 else f"{run_name} (exit {code}; {log_path})"

    failed = [] if steps else [launch(runs[0], "01-03")]  # the shared steps, once
    with ThreadPoolExecutor(jobs) as pool:
        failed += list(pool.map(lambda run: launch(run, steps), runs))
    failed = [f for f in failed if f]
    if failed:
        raise RuntimeError("sweep: these runs failed (the others finished; rerun to resume):\n  " + "\n  ".join(failed))


def run_variant(run_name: str) -> tuple[str, int | None]:
    """A sweep run's folder name -> (variant, seed): `<variant>-seed<k>`, `seed<k>` (variant 'default'); any other
    name is its own variant, seed unknown."""
    match = re.fullmatch(r"(?:(?P<variant>.+)-)?seed(?P<seed>\d+)", run_name)
    return (match["variant"] or "default", int(match["seed"])) if match else (run_name, None)


def collect(root: str | Path) -> pd.DataFrame:
    """Every run's evaluation rows under `root` (a sweep folder or a single run), tagged with variant and seed.

    A run folder named `<variant>-seed<k>` or `seed<k>` gives both; any other run takes its folder name as the
    variant and the seed from its 07_eval manifest (NaN when run outside the runner, e.g. by nbval). A relative
    root is taken from the project root, as the runner does (Jupyter starts kernels in the notebook's folder).
    """
    root = PROJECT_ROOT / root
    if not any(root.glob("**/07_eval/results.csv")):
        raise FileNotFoundError(f"no */07_eval/results.csv under {root}: run the pipeline or a sweep there first")
    frames = []
    for results in sorted(root.glob("**/07_eval/results.csv")):
        run = results.parent.parent
        variant, seed = run_variant(run.name)
        if seed is None:
            manifest = results.parent / "manifest.json"
            variant, seed = run.name, read_json(manifest)["params"]["seed"] if manifest.is_file() else float("nan")
        frames.append(pd.read_csv(results).assign(variant=variant, seed=seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def seed_stats(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min, max and number of seeds per variant, stage, benchmark and metric."""
    keys = ["variant", "stage", "benchmark", "metric"]
    stats = summary.groupby(keys, sort=False)["value"].agg(["mean", "std", "min", "max", "count"]).reset_index()
    return stats.rename(columns={"count": "n_seeds"})


def gains(summary: pd.DataFrame, before: str = "sft", after: str = "dpo") -> pd.DataFrame:
    """Per variant and benchmark: the mean over seeds of the paired per-seed gain `after - before`, its standard
    error (std over seeds / sqrt(n)) and whether the gain exceeds two of them."""
    wide = summary.pivot_table(index=["variant", "benchmark", "metric", "seed"], columns="stage", values="value")
    diff = (wide[after] - wide[before]).dropna().rename("gain").reset_index()
    out = diff.groupby(["variant", "benchmark", "metric"], sort=False)["gain"].agg(["mean", "std", "count"])
    out["stderr"] = out["std"] / out["count"] ** 0.5
    out["above_2se"] = out["mean"] > 2 * out["stderr"]
    return out.rename(columns={"mean": "gain", "count": "n_seeds"}).drop(columns="std").round(3).reset_index()


def stats_table(stats: pd.DataFrame, stages=("base", "sft", "dpo")) -> pd.DataFrame:
    """Wide view: one row per variant and benchmark, 'mean ± std' per stage."""
    stats = stats[stats["stage"].isin(stages)].copy()
    stats["cell"] = [f"{m:.3f} ± {0 if pd.isna(s) else s:.3f}" for m, s in zip(stats["mean"], stats["std"])]
    wide = stats.pivot_table(index=["variant", "benchmark", "metric"], columns="stage", values="cell",
                             aggfunc="first")
    return wide[[s for s in stages if s in wide.columns]].reset_index()


def read_stats(name: str) -> pd.DataFrame:
    return pd.read_csv(PROJECT_ROOT / "outputs" / name / "summary_stats.csv")


def plot_stats(stats: pd.DataFrame, stages=("base", "sft", "dpo")):
    """Bar chart per benchmark: mean over seeds per variant and stage, std as error bars."""
    import matplotlib.pyplot as plt

    benchmarks = list(dict.fromkeys(stats["benchmark"]))
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4 * len(benchmarks), 3.2), squeeze=False)
    for ax, bench in zip(axes[0], benchmarks):
        sub = stats[(stats["benchmark"] == bench) & stats["stage"].isin(stages)]
        means = sub.pivot_table(index="variant", columns="stage", values="mean")[[s for s in stages
                                                                                  if s in set(sub["stage"])]]
        errs = sub.pivot_table(index="variant", columns="stage", values="std").reindex_like(means)
        means.plot.bar(ax=ax, yerr=errs.fillna(0), rot=30, legend=ax is axes[0][0])
        ax.set_title(bench)
    fig.tight_layout()
    return fig
