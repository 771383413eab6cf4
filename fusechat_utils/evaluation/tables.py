"""The paper's benchmark table for a run: benchmarks x base / SFT / SFT+DPO with the average row, beside the matching
paper target's columns of `data/paper/benchmarks.csv` (reference only, never a stand-in for our numbers), and a plot
of the per-benchmark deltas over the base. Usage: `benchmark_table("outputs/toy", "llama3.1-8b")`.

The Average row is over exactly the table's benchmark set (`average_set`): the paper's 14 benchmarks, or the 13 the
paper reports for the chosen target (no LiveCodeBench for Llama-3.2-1B), as soon as results.csv has any paper
benchmark; for a run with none at all (toy), every benchmark in results.csv that each stage can have (not the win rates against the base). A stage column
that lacks any of them shows "n/a (missing: X, Y)" instead of an average over a subset; `table.attrs["note"]`
(printed by the notebook) says what the average is over and what was left out.
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


# The paper's two benchmark tables: every column of the one a target belongs to (Tulu-3-8B beside the 8B-class).
PAPER_TABLES = {
    "7-9B targets": ["Llama3.1-8B-Instruct", "Llama-3.1-Tulu-3-8B", "FuseChat-Llama-3.1-8B-SFT",
                     "FuseChat-Llama-3.1-8B-Instruct", "Qwen2.5-7B-Instruct", "FuseChat-Qwen2.5-7B-SFT",
                     "FuseChat-Qwen2.5-7B-Instruct", "gemma-2-9b-it", "FuseChat-gemma2-9b-SFT",
                     "FuseChat-gemma2-9b-Instruct"],
    "1-3B targets": ["Llama3.2-3B-Instruct", "FuseChat-Llama-3.2-3B-SFT", "FuseChat-Llama-3.2-3B-Instruct",
                     "Llama3.2-1B-Instruct", "FuseChat-Llama-3.2-1B-SFT", "FuseChat-Llama-3.2-1B-Instruct"],
}
FIGURE1 = ("Llama3.1-8B-Instruct", "FuseChat-Llama-3.1-8B-Instruct")  # the paper's Figure 1: the 8B model's gains


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """A relative run_dir is taken from the project root, as the runner does (Jupyter starts this kernel in
    notebooks/analysis/)."""
    from fusechat_utils.config import PROJECT_ROOT

    path = PROJECT_ROOT / run_dir / "07_eval" / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run step 07_eval for this run first")
    return pd.read_csv(path)


def paper_benchmarks(paper_target: str | None = None) -> list[str]:
    """The paper's benchmark rows (14), or those the paper reports for `paper_target`'s columns (13 for 1B)."""
    paper = paper_table("benchmarks").set_index("benchmark").drop(index="Average")
    if not paper_target:
        return list(paper.index)
    if paper_target not in PAPER_COLUMNS:
        raise ValueError(f"paper_target {paper_target!r}: one of {', '.join(PAPER_COLUMNS)} or None")
    return list(paper.index[paper[list(PAPER_COLUMNS[paper_target])].notna().any(axis=1)])


def average_set(results: pd.DataFrame, paper_target: str | None = None) -> list[str]:
    """The benchmarks the Average row is over (see the module docstring)."""
    if set(results.benchmark) & set(paper_benchmarks()):
        return paper_benchmarks(paper_target)
    against_base = set(results.loc[results.metric.astype(str).str.endswith("_vs_base"), "benchmark"])
    return [b for b in dict.fromkeys(results.benchmark) if b not in against_base]


def missing_label(missing: list[str]) -> str:
    return f"n/a (missing: {', '.join(missing)})"


def our_table(results: pd.DataFrame, benchmarks: list[str] | None = None, decimals: int | None = None
              ) -> pd.DataFrame:
    """benchmark x stage (first metric of each benchmark), with an Average row over `benchmarks` (default:
    `average_set(results)`): a number where a stage has every one of them, else "n/a (missing: ...)"."""
    first = results.drop_duplicates(["stage", "benchmark"])
    wide = first.pivot(index="benchmark", columns="stage", values="value")
    wide = wide[[s for s in STAGES if s in wide.columns]].rename(columns=lambda s: f"ours: {STAGES[s]}")
    order = list(dict.fromkeys(first.benchmark))
    wide = wide.loc[order].astype(float)
    benchmarks = average_set(results) if benchmarks is None else list(benchmarks)
    average = {}
    for col in wide.columns:
        have = wide[col].dropna()
        missing = [b for b in benchmarks if b not in have.index]
        average[col] = have.loc[benchmarks].mean() if benchmarks and not missing else missing_label(missing or ["all"])
    if decimals is not None:
        wide = wide.round(decimals)
        average = {c: round(v, decimals) if isinstance(v, float) else v for c, v in average.items()}
    wide = wide.astype(object)
    wide.loc["Average"] = pd.Series(average, dtype=object)
    wide.attrs["note"] = average_note(wide, benchmarks)
    return wide


def average_note(table: pd.DataFrame, benchmarks: list[str]) -> str:
    """What the Average row of our columns is over, which stages lack a benchmark, what is shown but not averaged."""
    ours = [c for c in table.columns if c.startswith("ours: ")]
    lines = [f"Average (ours) over exactly these {len(benchmarks)} benchmarks: {', '.join(benchmarks)}."]
    for col in ours:
        val = table.loc["Average", col] if "Average" in table.index else None
        if isinstance(val, str):
            lines.append(f"{col}: no average, {val.removeprefix('n/a ').strip('()')}.")
    extra = [b for b in table.index if b != "Average" and b not in benchmarks and
             any(pd.notna(table.loc[b, c]) for c in ours)]
    if extra:
        lines.append(f"Shown but not averaged (not in this table's set): {', '.join(extra)}.")
    return "\n".join(lines)


def paper_columns(paper_target: str | None) -> pd.DataFrame:
    """The paper target's base / SFT / SFT+DPO columns (its own Average row included)."""
    if not paper_target:
        return pd.DataFrame()
    if paper_target not in PAPER_COLUMNS:
        raise ValueError(f"paper_target {paper_target!r}: one of {', '.join(PAPER_COLUMNS)} or None")
    paper = paper_table("benchmarks").set_index("benchmark")
    cols = PAPER_COLUMNS[paper_target]
    return paper[list(cols)].rename(columns=dict(zip(cols, [f"paper: {s}" for s in STAGES.values()])))


def benchmark_table(run_dir: str | Path, paper_target: str | None = None) -> pd.DataFrame:
    """Our run's table; with a paper target, the paper's rows and columns beside it (outer join on benchmark).
    The Average row: see `our_table`; `table.attrs["note"]` says what it is over."""
    results = load_results(run_dir)
    paper = paper_columns(paper_target)
    benchmarks = average_set(results, paper_target)
    ours = our_table(results, benchmarks, decimals=1)  # the paper's own values keep their precision (MT-Bench)
    if paper.empty:
        return ours
    table = ours.join(paper, how="outer")
    order = [b for b in ours.index if b != "Average"] + [b for b in paper.index if b not in ours.index and
                                                         b != "Average"] + ["Average"]
    table = table.loc[order]
    table.attrs["note"] = average_note(table, benchmarks)
    return table


def deltas(table: pd.DataFrame, source: str = "ours") -> pd.DataFrame:
    """Per benchmark: SFT - base and SFT+DPO - base, for `source` ('ours' or 'paper')."""
    table = table.drop(index="Average", errors="ignore")
    base = table.get(f"{source}: base")
    out = {}
    for stage in ("SFT", "SFT+DPO"):
        col = f"{source}: {stage}"
        if base is not None and col in table:
            out[f"{stage} - base"] = pd.to_numeric(table[col]) - pd.to_numeric(base)
    return pd.DataFrame(out, index=table.index).dropna(how="all")


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


def full_paper_table(run_dir: str | Path, paper_target: str) -> pd.DataFrame:
    """Every column of the paper's table that `paper_target` is in, with our base / SFT / SFT+DPO beside them."""
    group = next(g for g, cols in PAPER_TABLES.items() if PAPER_COLUMNS[paper_target][0] in cols)
    paper = paper_table("benchmarks").set_index("benchmark")[PAPER_TABLES[group]]
    ours = benchmark_table(run_dir, paper_target)
    ours = ours[[c for c in ours.columns if c.startswith("ours: ")]]
    table = ours.join(paper, how="outer").loc[[b for b in paper.index]]
    table.attrs["note"] = f"The paper's {group} table with ours beside; " + ours.attrs.get("note", "")
    return table


def figure1(table: pd.DataFrame | None = None, ax=None):
    """The paper's Figure 1, FuseChat-Llama-3.1-8B-Instruct's per-benchmark gain over Llama-3.1-8B-Instruct, as
    bars; ours (SFT+DPO - base) overlaid as points where `table` (a `benchmark_table`) has both numbers."""
    import matplotlib.pyplot as plt

    paper = paper_table("benchmarks").set_index("benchmark").drop(index="Average")
    gains = (paper[FIGURE1[1]] - paper[FIGURE1[0]]).dropna()
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.6 * len(gains)), 4))
    ax.bar(range(len(gains)), gains.values, color="#9ecae1", edgecolor="black", label="paper: 8B SFT+DPO - base")
    if table is not None:
        ours = deltas(table, "ours").get("SFT+DPO - base", pd.Series(dtype=float)).reindex(gains.index)
        if ours.notna().any():
            ax.plot(range(len(gains)), ours.values, "o", color="#d62728", label="ours: SFT+DPO - base")
    ax.set_xticks(range(len(gains)), gains.index, rotation=60, ha="right")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylabel("points over Llama-3.1-8B-Instruct")
    ax.set_title("Figure 1: per-benchmark gains of FuseChat-Llama-3.1-8B-Instruct")
    ax.legend()
    return ax
