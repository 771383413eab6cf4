"""The paper's reference tables (copied from FuseChat-3.0's paper and README), for analysis notebooks to show
beside our results. They are facts to compare against, never a stand-in for a result of ours."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_DIR = Path(__file__).resolve().parent / "data" / "paper"
TABLES = ("benchmarks", "dataset_composition", "sampling_params", "train_hparams")


def paper_table(name: str) -> pd.DataFrame:
    if name not in TABLES:
        raise KeyError(f"unknown paper table {name!r}; known: {', '.join(TABLES)}")
    return pd.read_csv(PAPER_DIR / f"{name}.csv")
