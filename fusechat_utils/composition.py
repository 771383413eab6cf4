"""Dataset composition (paper Table 1 format) and plots of the scored responses and the pairs built from them.

Usage (what notebooks/analysis/dataset_composition.ipynb does):
    tables = composition.load_run("outputs/toy"); composition.composition_table(*tables[:3])
    composition.plot_rm_by_source(scored); composition.plot_gap_hist(dpo); composition.plot_length_by_source(scored)

The paper's counts (fusechat_utils/data/paper/dataset_composition.csv) sit beside ours in `paper_*` columns, as
reference only: every other number in the table is computed from this run's artifacts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "analysis" / "dataset_composition.ipynb"
COLUMNS = ["dataset", "category", "Selected", "SFT", "DPO", "Pool", "paper_Selected", "paper_SFT", "paper_DPO"]


def composition_table(prompts_df: pd.DataFrame, sft_df: pd.DataFrame, dpo_df: pd.DataFrame,
                      selected_after_pairing=()) -> pd.DataFrame:
    """Per dataset: prompts selected, SFT rows and DPO pairs (04), the paper's counts beside; a Total row.

    `Selected` is where the dataset's cap applied: 01's prompts (`Pool`) when 01 capped it (the toy profile), the
    prompts 04's `pairs_max_per_dataset` kept (SFT + DPO) for the datasets named in `selected_after_pairing` (the
    paper profiles: the paper's Selected = SFT + DPO for every dataset of its table). `Pool` = 01's prompts.
    """
    from fusechat_utils.paper import paper_table

    paper = paper_table("dataset_composition").set_index("dataset")
    datasets = list(dict.fromkeys([*prompts_df["dataset"], *sft_df["dataset"], *dpo_df["dataset"]]))
    category = {**dict(zip(dpo_df["dataset"], dpo_df["category"])), **dict(zip(sft_df["dataset"], sft_df["category"])),
                **dict(zip(prompts_df["dataset"], prompts_df["category"]))}
    rows = []
    for name in datasets:
        ref = paper.loc[name] if name in paper.index else None
        pool, n_sft, n_dpo = (int((df["dataset"] == name).sum()) for df in (prompts_df, sft_df, dpo_df))
        used = len(set(sft_df.loc[sft_df["dataset"] == name, "prompt_id"])
                   | set(dpo_df.loc[dpo_df["dataset"] == name, "prompt_id"]))
        rows.append({"dataset": name, "category": category[name],
                     "Selected": used if name in selected_after_pairing else pool, "SFT": n_sft, "DPO": n_dpo,
                     "Pool": pool,
                     "paper_Selected": _ref(ref, "selected"), "paper_SFT": _ref(ref, "sft"),
                     "paper_DPO": _ref(ref, "dpo")})
    table = pd.DataFrame(rows, columns=COLUMNS)
    total = {"dataset": "Total", "category": "", **{c: table[c].sum(min_count=1) for c in COLUMNS[2:]}}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table.astype({c: "Int64" for c in COLUMNS[2:]})


def _ref(ref: pd.Series | None, key: str):
    return None if ref is None else int(ref[key])


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(prompts, sft, dpo, scored) of a run; a missing artifact names the file and the step that writes it.

    A relative run_dir is taken from the project root, as the runner does: Jupyter starts this notebook's kernel
    in notebooks/analysis/.
    """
    from fusechat_utils.config import PROJECT_ROOT

    run_dir = PROJECT_ROOT / run_dir
    paths = {"prompts": run_dir / "01_prompts" / "prompts.parquet", "sft": run_dir / "04_pairs" / "sft.parquet",
             "dpo": run_dir / "04_pairs" / "dpo.parquet", "scored": run_dir / "03_scoring" / "scored.parquet"}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"missing run artifact(s) {missing}: run steps 01-04 for {run_dir} first")
    return tuple(pd.read_parquet(p) for p in paths.values())  # type: ignore[return-value]


def gap_table(dpo_df: pd.DataFrame) -> pd.DataFrame:
    """Chosen-minus-rejected RM gap per dataset: count, min, median, max."""
    gaps = dpo_df.assign(gap=dpo_df["chosen_score"] - dpo_df["rejected_score"])
    return gaps.groupby("dataset")["gap"].agg(["count", "min", "median", "max"]).reset_index()


def response_lengths(scored: pd.DataFrame) -> pd.Series:
    """Tokens per response when 02 recorded them, else whitespace words."""
    if "n_tokens" in scored and scored["n_tokens"].notna().all():
        return scored["n_tokens"].astype(int)
    return scored["response"].str.split().str.len()


def _by_source(values: pd.Series, scored: pd.DataFrame, title: str, xlabel: str, ax=None):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for source, part in values.groupby(scored["source_model"]):
        ax.hist(part, bins=30, alpha=0.5, label=str(source))
    ax.set(title=title, xlabel=xlabel, ylabel="responses")
    ax.legend(fontsize="small")
    return ax


def plot_rm_by_source(scored: pd.DataFrame, ax=None):
    """Histogram of RM scores per source model (03)."""
    return _by_source(scored["rm_score"].astype(float), scored, "RM score per source model", "rm_score", ax)


def plot_length_by_source(scored: pd.DataFrame, ax=None):
    """Histogram of response lengths per source model (02)."""
    return _by_source(response_lengths(scored), scored, "Response length per source model", "length", ax)


def plot_gap_hist(dpo_df: pd.DataFrame, gap_min: float | None = None, gap_max: float | None = None, ax=None):
    """Histogram of RM(chosen) - RM(rejected) over the DPO pairs, with the gap window drawn if given."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(dpo_df["chosen_score"] - dpo_df["rejected_score"], bins=30)
    for bound in (gap_min, gap_max):
        if bound is not None:
            ax.axvline(bound, color="k", linestyle="--")
    ax.set(title="DPO pairs: chosen - rejected RM gap", xlabel="gap", ylabel="pairs")
    return ax
