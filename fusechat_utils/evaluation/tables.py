"""The paper's benchmark table for a run: benchmarks x base / SFT / SFT+DPO with the average row, beside the matching
paper target's columns of `data/paper/benchmarks.csv` (reference only, never a stand-in for our numbers), and a plot
of the per-benchmark deltas over the base. Usage: `benchmark_table("outputs/toy", "llama3.1-8b")`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fusechat_utils.paper import paper_table

STAGES = {"base": "base", "sft": "SFT", "dpo": "SFT+DPO"}
# profile -> the paper's (base, SFT, SFT+DPO) columns for that target
PAPER_COLUMNS = {
    "llama3.1-8b": ("Llama3.1-8B-Instruct", "FuseChat-Llama-3.1-8B-SFT", "FuseChat-Llama-3.1-8B-Instruct"),
    "qwen2.5-7b": ("Qwen2.5-7B-Instruct", "FuseChat-Qwen2.5-7B-SFT", "FuseChat-Qwen2.5-7B-Instruct"),
    "gemma2-9b": ("gemma-2-9b-it", "FuseChat-gemma2-9b-SFT", "FuseChat-gemma2-9b-Instruct"),
    "llama3.2-3b": ("Llama3.2-3B-Instruct", "FuseChat-Llama-3.2-3B-SFT", "FuseChat-Llama-3.2-3B-Instruct"),
    "llama3.2-1b": ("Llama3.2-1B-Instruct", "FuseChat-Llama-3.2-1B-SFT", "FuseChat-Llama-3.2-1B-Instruct"),
}


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """A relative run_dir is taken from the project root, as the runner does (Jupyter starts this kernel in
    notebooks/analysis/)."""
    from fusechat_utils.config import PROJECT_ROOT

    path = PROJECT_ROOT / run_dir / "07_eval" / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run step 07_eval for this run first")
    return pd.read_csv(path)


def our_table(results: pd.DataFrame) -> pd.DataFrame:
    """benchmark x stage (first metric of each benchmark), with an Average row over the benchmarks every stage has."""
    first = results.drop_duplicates(["stage", "benchmark"])
    wide = first.pivot(index="benchmark", columns="stage", values="value")
    wide = wide[[s for s in STAGES if s in wide.columns]].rename(columns=lambda s: f"ours: {STAGES[s]}")
    order = list(dict.fromkeys(first.benchmark))
    wide = wide.loc[order]
    wide.loc["Average"] = wide.dropna().mean()
    return wide


def paper_columns(paper_target: str | None) -> pd.DataFrame:
    if not paper_target:
        return pd.DataFrame()
    if paper_target not in PAPER_COLUMNS:
        raise ValueError(f"paper_target {paper_target!r}: one of {', '.join(PAPER_COLUMNS)} or None")
    paper = paper_table("benchmarks").set_index("benchmark")
    cols = PAPER_COLUMNS[paper_target]
    return paper[list(cols)].rename(columns=dict(zip(cols, [f"paper: {s}" for s in STAGES.values()])))


def benchmark_table(run_dir: str | Path, paper_target: str | None = None) -> pd.DataFrame:
    """Our run's table; with a paper target, the paper's rows and columns beside it (outer join on benchmark)."""
    ours = our_table(load_results(run_dir)).round(1)  # the paper's own values keep their precision (MT-Bench)
    paper = paper_columns(paper_target)
    if paper.empty:
        return ours
    table = ours.join(paper, how="outer")
    order = [b for b in ours.index if b != "Average"] + [b for b in paper.index if b not in ours.index and
                                                         b != "Average"] + ["Average"]
    return table.loc[order]


def deltas(table: pd.DataFrame, source: str = "ours") -> pd.DataFrame:
    """Per benchmark: SFT - base and SFT+DPO - base, for `source` ('ours' or 'paper')."""
    base = table.get(f"{source}: base")
    out = {}
    for stage in ("SFT", "SFT+DPO"):
        col = f"{source}: {stage}"
        if base is not None and col in table:
            out[f"{stage} - base"] = table[col] - base
    return pd.DataFrame(out).drop(index="Average", errors="ignore").dropna(how="all")


def plot_deltas(table: pd.DataFrame, ax=None):
    """Bars of our per-benchmark deltas over the base; the paper's, where shown, as outlined bars."""
    import matplotlib.pyplot as plt

    ours, paper = deltas(table, "ours"), deltas(table, "paper")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.6 * len(table)), 4))
    frame = ours.add_prefix("ours: ").join(paper.add_prefix("paper: "), how="outer")
    frame.plot.bar(ax=ax, edgecolor="black")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylabel("points over the base")
    ax.set_title("Per-benchmark change over the base target")
    return ax
