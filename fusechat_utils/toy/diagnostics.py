"""Why DPO helps or not on the toy: an audit of a run's preference pairs against the toy's ground truth, beside
what 06 logged about them.

For each DPO pair of `04_pairs/dpo.parquet` whose prompt the toy can grade (general: instruction-level score,
`tasks.follow_score`; math: the boxed answer against the gold; Chinese: the exact answer), the audit says whether
the pair's `chosen` is truly better, equal or worse than its `rejected`, how long each is, and how often each
carries the style the reward model is biased toward (`tasks.VERBOSE`). From `06_dpo/log_history.json`: the
last logged reward accuracy and margin on the held-out pairs (the target's log-prob ratio of chosen over rejected).
`instruction_audit` sets what the general pairs teach beside what the benchmark asks: per check (the word itself
and each instruction), how often a pair's chosen follows it and its rejected does not (and the reverse), and how
often the target follows it on the held-out benchmark at each stage.
Usage: `pair_audit("outputs/toy/seed0")`; `sweep_audit("outputs/ablations")` (mean over seeds per variant).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fusechat_utils.io import read_json
from fusechat_utils.sweep import run_variant
from fusechat_utils.toy import tasks

DPO_LOG_KEYS = ("eval_rewards/accuracies", "eval_rewards/margins", "rewards/accuracies", "rewards/margins")


def truth(category: str, prompt: str, response: str) -> float | None:
    """The ground-truth quality of `response` in [0, 1], or None where the toy has no grader for the prompt."""
    item = tasks.parse_item(category, prompt)
    if item is None:
        return None
    return tasks.follow_score(item, response) if category == "general" else float(tasks.check(item, response))


def source_table(run_dir: str | Path) -> pd.DataFrame:
    """Per source and category, over the responses 02 sampled (the paper's settings per source) and 03 scored: the
    ground-truth accuracy (math: the verified answer; code: tests passed; general: instruction-level score;
    Chinese: exact), the mean reward, the mean length and the share carrying the source's style line."""
    scored = pd.read_parquet(Path(run_dir) / "03_scoring" / "scored.parquet")
    styles = {name: p["style"] for name, p in tasks.PERSONAS.items()}
    rows = []
    for r in scored.itertuples():
        if r.category == "code":
            right = None if r.tests_passed is None else float(r.tests_passed)
        else:
            right = truth(r.category, r.prompt[-1]["content"] if not isinstance(r.prompt, str) else r.prompt,
                          r.response)
        style = styles.get(r.source_model)
        rows.append({"source": r.source_model, "category": r.category, "accuracy": right, "rm_score": r.rm_score,
                     "chars": len(r.response or ""), "styled": bool(style) and style in (r.response or "")})
    out = pd.DataFrame(rows).groupby(["source", "category"]).agg(
        samples=("chars", "size"), accuracy_pct=("accuracy", "mean"), rm_score=("rm_score", "mean"),
        chars=("chars", "mean"), styled_pct=("styled", "mean"))
    out[["accuracy_pct", "styled_pct"]] *= 100
    return out.round(2)


def pair_rows(run_dir: str | Path) -> pd.DataFrame:
    """One row per DPO pair: category, same source or not, truth of chosen and rejected, lengths, styles."""
    pairs = pd.read_parquet(Path(run_dir) / "04_pairs" / "dpo.parquet")
    rows = []
    for p in pairs.itertuples():
        prompt, chosen, rejected = p.prompt[-1]["content"], p.chosen[-1]["content"], p.rejected[-1]["content"]
        good, bad = truth(p.category, prompt, chosen), truth(p.category, prompt, rejected)
        rows.append({"category": p.category, "same_source": p.source_model == p.rejected_source_model,
                     "truth_gap": None if good is None or bad is None else good - bad,
                     "chosen_chars": len(chosen), "rejected_chars": len(rejected),
                     "chosen_verbose": chosen.startswith(tasks.VERBOSE),
                     "rejected_verbose": rejected.startswith(tasks.VERBOSE)})
    return pd.DataFrame(rows)


def pair_audit(run_dir: str | Path) -> pd.DataFrame:
    """Per category: pairs, % same-source, % whose chosen is truly better / equal / worse, mean lengths, % verbose
    style among chosen and rejected."""
    df = pair_rows(run_dir)
    if df.empty:
        return pd.DataFrame()
    graded = df.dropna(subset=["truth_gap"])
    out = df.groupby("category").agg(pairs=("category", "size"), same_source_pct=("same_source", "mean"),
                                     chosen_chars=("chosen_chars", "mean"), rejected_chars=("rejected_chars", "mean"),
                                     chosen_verbose_pct=("chosen_verbose", "mean"),
                                     rejected_verbose_pct=("rejected_verbose", "mean"))
    gaps = graded.groupby("category")["truth_gap"]
    out["truly_better_pct"] = gaps.apply(lambda g: (g > 0).mean())
    out["equal_pct"] = gaps.apply(lambda g: (g == 0).mean())
    out["truly_worse_pct"] = gaps.apply(lambda g: (g < 0).mean())
    pct = [c for c in out.columns if c.endswith("_pct")]
    out[pct] = 100 * out[pct]
    return out.round(1)


def instruction_audit(run_dir: str | Path) -> pd.DataFrame:
    """Per check of the general domain: pairs asking it, % of them teaching it (chosen follows, rejected not),
    % teaching against it, and the % of held-out benchmark prompts asking it that each stage's target follows."""
    run_dir = Path(run_dir)
    pairs = pd.read_parquet(run_dir / "04_pairs" / "dpo.parquet")
    rows = []
    for p in pairs[pairs["category"] == "general"].itertuples():
        item = tasks.parse_general(p.prompt[-1]["content"])
        if item:
            good, bad = tasks.follow(item, p.chosen[-1]["content"]), tasks.follow(item, p.rejected[-1]["content"])
            rows += [{"check": k, "taught": good[k] and not bad[k], "against": bad[k] and not good[k]} for k in good]
    taught = pd.DataFrame(rows, columns=["check", "taught", "against"]).groupby("check").agg(
        pairs_asking=("taught", "size"), taught_pct=("taught", "mean"), against_pct=("against", "mean"))
    for stage, samples in _general_samples(run_dir):
        flat = pd.DataFrame([{"check": k, "ok": v} for d in samples["followed"] for k, v in d.items()])
        taught[f"{stage}_follows_pct"] = flat.groupby("check")["ok"].mean()
    pct = [c for c in taught.columns if c.endswith("_pct")]
    taught[pct] = 100 * taught[pct]
    return taught.round(1)


def _general_samples(run_dir: Path):
    for stage in ("base", "sft", "dpo"):
        path = run_dir / "07_eval" / "samples" / stage / "toy_general.jsonl"
        if path.is_file():
            yield stage, pd.read_json(path, lines=True)


def answer_shapes(run_dir: str | Path) -> pd.DataFrame:
    """Per stage, the target's held-out answers on general prompts: % of "twice" prompts answered with one copy /
    two / more (a wrong word still counts as a copy), and % of answers opening with each source's style line."""
    rows = []
    for stage, samples in _general_samples(Path(run_dir)):
        twice = samples[samples["followed"].apply(lambda f: "twice" in f)]["response"]
        parts = twice.apply(lambda r: len(tasks.answer_line(r).rstrip("!").split(" ")))
        first = samples["response"].fillna("").str.split("\n").str[0]
        rows.append({"stage": stage, "twice_one_copy_pct": (parts == 1).mean(),
                     "twice_two_copies_pct": (parts == 2).mean(),
                     "twice_more_pct": (parts > 2).mean(),
                     **{f"style_{name}_pct": (first == p["style"]).mean() for name, p in tasks.PERSONAS.items()
                        if p["style"]}})
    out = pd.DataFrame(rows).set_index("stage")
    return (100 * out).round(1)


def dpo_log(run_dir: str | Path) -> dict:
    """The last held-out reward accuracy and margin 06 logged (and the last training ones)."""
    path = Path(run_dir) / "06_dpo" / "log_history.json"
    if not path.exists():
        return {}
    hist = read_json(path)
    return {k: next((r[k] for r in reversed(hist) if k in r), None) for k in DPO_LOG_KEYS}


def _over_runs(sweep_dir: str | Path, audit, keys: list[str], with_log: bool = False) -> pd.DataFrame:
    """`audit(run)` of every run under a sweep folder (with 06's log beside it), mean over seeds per variant."""
    frames = []
    for pairs in sorted(Path(sweep_dir).glob("*/04_pairs/dpo.parquet")):
        run = pairs.parents[1]
        table = audit(run)
        if not table.empty:
            table = table.reset_index().assign(variant=run_variant(run.name)[0])
            frames.append(table.assign(**dpo_log(run)) if with_log else table)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames).groupby(["variant", *keys], sort=False).mean(numeric_only=True).round(2)


def sweep_audit(sweep_dir: str | Path) -> pd.DataFrame:
    """pair_audit and dpo_log of every run under a sweep folder, mean over seeds per variant and category."""
    return _over_runs(sweep_dir, pair_audit, ["category"], with_log=True)


def sweep_answer_shapes(sweep_dir: str | Path) -> pd.DataFrame:
    """answer_shapes of every run under a sweep folder, mean over seeds per variant and stage."""
    return _over_runs(sweep_dir, answer_shapes, ["stage"])


def sweep_instruction_audit(sweep_dir: str | Path) -> pd.DataFrame:
    """instruction_audit of every run under a sweep folder, mean over seeds per variant and check."""
    return _over_runs(sweep_dir, instruction_audit, ["check"])
