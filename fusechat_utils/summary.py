"""What `fusechat run` prints at the end: each step's status and time, and the run's headline tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def print_summary(results) -> None:
    table = pd.DataFrame([{"step": r.step, "status": r.status, "wall_s": round(r.wall_time_s, 1)} for r in results])
    print("\n" + table.to_string(index=False))
    if not results:
        return
    run_dir = Path(results[0].notebook).parent.parent
    for title, path in [("selection (01_prompts)", run_dir / "01_prompts" / "selection.csv"),
                        ("composition (04_pairs)", run_dir / "04_pairs" / "composition.csv"),
                        ("evaluation (07_eval)", run_dir / "07_eval" / "results.csv")]:
        if path.is_file():
            print(f"\n{title}: {path}\n" + pd.read_csv(path).to_string(index=False))
