"""Step 04: build the SFT and DPO sets from scored responses, with the paper's per-category rules (recipe §1.4).

Usage (what notebooks/04_pairs.ipynb does):
    cfg = PairsConfig.from_params(globals()); result = pairs.run(cfg)
    sft, dpo = pairs.build_sets(scored_df, sft_ratio=0.4, gap_min=0.01, gap_max=0.1)   # on any 03 table

Rules ([C] = README, [U] = the paper does not say; each [U] is a param with the default below):
- general: SFT = the highest-RM response over all sources; DPO = the highest- vs the lowest-RM response of ONE
  source with chosen - rejected in [gap_min, gap_max]; prompts are split sft_ratio : 1 - sft_ratio per dataset [C].
- math: DPO chosen = highest-RM correct, rejected = lowest-RM incorrect, same source, same gap window [C];
  prompts without such a pair go to SFT with their highest-RM correct response; no correct response -> dropped.
- code: as math with "passes" = static_ok and tests_passed; prompts where every response fails are dropped [C].
- Chinese: SFT only, highest-RM response [C].
[U] choices (param -> default, why):
- pairs_split_order -> "filter_then_split": general prompts without a valid pair are dropped, the rest split 4:6
  (the README counts are SFT = floor(0.4 * total) exactly, which only filter-then-split gives).
  "split_then_filter": split all prompts 4:6, then drop DPO-side prompts without a valid pair.
- pairs_pair_source -> "best_response": the source that wrote the single highest-RM (passing/correct) response
  supplies the pair (co-author build_dataset_v2); "best_valid": among sources whose pair meets the gap window,
  the one with the highest chosen score.
- pairs_gap_inclusive -> true: both bounds allowed. pairs_gap_tol -> 1e-6: scores come from float32/bf16 reward
  models, so 0.11 - 0.01 lands a few ulps off 0.1; a gap within tol of a bound counts as on it.
- pairs_code_gap_filter -> true: the gap window applies to code pairs too (the paper says same-source/gap rules
  hold generally); false keeps every pass/fail pair.
- pairs_math_pair_source -> best_response in the toy profile (its demo numbers), best_valid in the paper profiles.
  Math has two sources: OpenMathInstruct-2's single Llama-3.1-405B reference solution and N Qwen2.5-Math samples.
  The reference, alone in its source, can never be a same-source pair, so under best_response every prompt whose
  top correct response is the reference (correct by construction in OMI-2, so on top for roughly 1 prompt in
  N + 1 = 6 or more) gets no pair and goes to SFT, whatever Qwen's samples are. The paper's math DPO share,
  11,615 of 51,803 = 22.4 % (40,188 SFT), is already near the most a 5-sample source can give (prompts with both
  a correct and an incorrect Qwen sample and a gap in [0.01, 0.1]; at Qwen2.5-Math-72B's ~85 % per-sample accuracy
  the mixed prompts are roughly a quarter); losing a further ~1/6 of them under best_response is the less likely
  reading. best_valid (the pair of the source whose pair is valid: Qwen's) is also the README's math rule read
  literally: a correct/incorrect pair from one source if the gap fits, else SFT with the best correct response.
  The paper profiles' cap after pairing (`pairs_dpo_share`) then makes the counts exact given enough prompts.
- pairs_max_per_dataset -> {} in the toy profile (its caps apply in 01, before the filters); the paper's Selected
  in the paper profiles: drawn after pairing from the prompts routed to SFT/DPO (`_cap_after_pairing`): general
  SFT = floor(sft_ratio * Selected), math/code DPO = round(pairs_dpo_share * Selected), Chinese all SFT; the
  rest are dropped with reason `over_cap`. The paper's table has Selected = SFT + DPO for every dataset (and
  SFT = floor(0.4 * Selected) for the general ones), i.e. its counts were taken after filtering.
- Ties: the higher score wins; equal scores are broken by source_model name, then sample_index (ascending), for
  both chosen and rejected. A pair needs two different rows with different text.
- Ablations: pairs_pairing = same_source | cross_source (cross: best over all sources vs worst over all sources),
  the gap window, pairs_sft_ratio.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd

from fusechat_utils.config import SeededStepConfig, invalid

REQUIRED = ["prompt_id", "dataset", "category", "source_model", "sample_index", "prompt", "response", "rm_score"]
SFT_COLUMNS = ["dataset", "source_model", "conversations", "prompt_id", "category", "rm_score"]
DPO_COLUMNS = ["dataset", "source_model", "prompt", "chosen", "rejected", "chosen_score", "rejected_score",
               "prompt_id", "category", "rejected_source_model"]
CATEGORIES = ("general", "math", "code", "chinese")


@dataclass(frozen=True)
class Rules:
    """The pairing rules as plain values; `build_sets` keyword arguments map onto these one to one."""

    sft_ratio: float = 0.4
    gap_min: float = 0.01
    gap_max: float = 0.1
    pairing: str = "same_source"
    seed: int = 0
    pair_source: str = "best_response"
    split_order: str = "filter_then_split"
    gap_inclusive: bool = True
    gap_tol: float = 1e-6
    code_gap_filter: bool = True
    math_pair_source: str = "best_response"
    max_per_dataset: dict = field(default_factory=dict)  # dataset -> Selected after pairing (None: no cap)
    dpo_share: dict = field(default_factory=dict)  # math/code dataset -> DPO share of its capped Selected

    def __post_init__(self) -> None:
        choices = {"pairing": ("same_source", "cross_source"), "pair_source": ("best_response", "best_valid"),
                   "math_pair_source": ("best_response", "best_valid"),
                   "split_order": ("filter_then_split", "split_then_filter")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"pairs: {name}={getattr(self, name)!r}, expected one of {allowed}")
        if not 0.0 <= self.sft_ratio <= 1.0:
            raise ValueError(f"pairs: sft_ratio={self.sft_ratio} must be in [0, 1]")
        if self.gap_min > self.gap_max:
            raise ValueError(f"pairs: gap_min={self.gap_min} > gap_max={self.gap_max}")
        for name, cap in self.max_per_dataset.items():
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
                raise ValueError(f"pairs: max_per_dataset[{name!r}]={cap!r} must be an int >= 0 or None")
        for name, share in self.dpo_share.items():
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
                raise ValueError(f"pairs: dpo_share[{name!r}]={share!r} must be a number in [0, 1]")

    def gap_reason(self, gap: float, windowed: bool = True) -> str | None:
        """None if the gap is inside the window, else 'gap_below' / 'gap_above'."""
        if not windowed:
            return None if gap > 0 else "gap_below"
        lo, hi, tol = self.gap_min, self.gap_max, self.gap_tol
        below = gap < lo - tol if self.gap_inclusive else gap <= lo + tol
        above = gap > hi + tol if self.gap_inclusive else gap >= hi - tol
        return "gap_below" if below else "gap_above" if above else None


# ----------------------------------------------------------------------------------------------------------------
# choosing responses (plain tuples: a paper-scale table has ~160k prompts and pandas per group is 10x slower)


class Resp(NamedTuple):
    row: int  # index label in the scored table
    source: str
    sample_index: int
    score: float
    text: str
    verdict: bool | None  # math: correct; code: passes; general/chinese: None


def _best(resps: list[Resp]) -> Resp | None:
    return min(resps, key=lambda r: (-r.score, r.source, r.sample_index), default=None)


def _worst(resps: list[Resp]) -> Resp | None:
    return min(resps, key=lambda r: (r.score, r.source, r.sample_index), default=None)


def _good_bad(resps: list[Resp], category: str) -> tuple[list[Resp], list[Resp]]:
    """Responses allowed as chosen and as rejected. Unverified ones (None) are neither in math and code."""
    if category not in ("math", "code"):
        return resps, resps
    return [r for r in resps if r.verdict is True], [r for r in resps if r.verdict is False]


def _tri(value: Any) -> bool | None:
    """True / False / None from a parquet cell (numpy bools, None and NaN included)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else bool(value)


def _verdict(category: str, correct: Any, static_ok: Any, tests_passed: Any) -> bool | None:
    if category == "math":
        return _tri(correct)
    if category != "code":
        return None
    static_ok, tests_passed = _tri(static_ok), _tri(tests_passed)
    if static_ok is False or tests_passed is False:
        return False
    return True if static_ok and tests_passed else None


def _candidate(good: list[Resp], bad: list[Resp], rules: Rules, windowed: bool) -> dict:
    """{chosen, rejected, gap, reason}: reason None means a valid pair."""
    chosen, rejected = _best(good), _worst(bad)
    if chosen is None or rejected is None:
        return {"chosen": chosen, "rejected": rejected, "gap": None, "reason": "no_pair"}
    if chosen.row == rejected.row or chosen.text == rejected.text:
        return {"chosen": chosen, "rejected": rejected, "gap": 0.0, "reason": "no_pair"}
    gap = chosen.score - rejected.score
    return {"chosen": chosen, "rejected": rejected, "gap": gap, "reason": rules.gap_reason(gap, windowed)}


def choose_pair(resps: list[Resp], category: str, rules: Rules) -> dict:
    """The DPO pair of one prompt's responses under `rules` (see the module docstring), valid or not."""
    good, bad = _good_bad(resps, category)
    windowed = category != "code" or rules.code_gap_filter
    if rules.pairing == "cross_source":
        return _candidate(good, bad, rules, windowed)
    top = _best(good)
    if top is None:
        return {"chosen": None, "rejected": None, "gap": None, "reason": "no_pair"}
    by_source = {s: _candidate([r for r in good if r.source == s], [r for r in bad if r.source == s], rules, windowed)
                 for s in sorted({r.source for r in good})}
    first = by_source[top.source]
    pair_source = rules.math_pair_source if category == "math" else rules.pair_source
    if pair_source == "best_response" or first["reason"] is None:
        return first
    valid = [c for c in by_source.values() if c["reason"] is None]
    if not valid:
        return first
    return by_source[_best([c["chosen"] for c in valid]).source]


# ----------------------------------------------------------------------------------------------------------------
# routing prompts to SFT / DPO / dropped


def _decision(resps: list[Resp], category: str, rules: Rules) -> dict:
    """One prompt's fate before the general split: route sft | dpo | split (general) | drop, and why."""
    if category == "chinese":
        return {"route": "sft", "reason": "sft_only", "sft": _best(resps), "pair": None}
    pair = choose_pair(resps, category, rules)
    if category == "general":
        return {"route": "split", "reason": pair["reason"], "sft": _best(resps), "pair": pair}
    if pair["reason"] is None:
        return {"route": "dpo", "reason": "valid_pair", "sft": None, "pair": pair}
    best = _best(_good_bad(resps, category)[0])
    if best is None:
        return {"route": "drop", "reason": "none_correct" if category == "math" else "all_fail", "sft": None,
                "pair": pair}
    return {"route": "sft", "reason": pair["reason"], "sft": best, "pair": pair}


def sft_share(ids: list[str], ratio: float, seed: int) -> set[str]:
    """floor(ratio * n) of `ids`, a seeded random subset independent of the input order."""
    ordered = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_sft = math.floor(ratio * len(ordered) + 1e-9)
    return {ordered[i] for i in order[:n_sft]}


def _split_general(decisions: dict[str, dict], rules: Rules) -> None:
    """Resolve every 'split' decision in place, per dataset (the README's counts are per dataset)."""
    by_dataset: dict[str, list[str]] = {}
    for pid, d in decisions.items():
        if d["route"] != "split":
            continue
        if rules.split_order == "filter_then_split" and d["reason"] is not None:
            d["route"] = "drop"
            continue
        by_dataset.setdefault(d["dataset"], []).append(pid)
    for ids in by_dataset.values():
        to_sft = sft_share(ids, rules.sft_ratio, rules.seed)
        for pid in ids:
            d = decisions[pid]
            if pid in to_sft:
                d["route"], d["reason"] = "sft", "split_sft"
            elif d["reason"] is None:
                d["route"], d["reason"] = "dpo", "split_dpo"
            else:
                d["route"] = "drop"


def _draw(ids: list[str], k: int, seed: int, salt: str) -> set[str]:
    """k of `ids`, a seeded random subset independent of the input order (all of them if k >= len(ids))."""
    if k >= len(ids):
        return set(ids)
    ordered = sorted(ids)
    order = np.random.default_rng([seed, zlib.crc32(salt.encode())]).permutation(len(ordered))
    return {ordered[i] for i in order[:k]}


def cap_targets(category: str, cap: int, rules: Rules, dataset: str) -> tuple[int, int] | None:
    """(SFT, DPO) prompts a dataset capped at `cap` after pairing should hold; None = one draw over both routes.

    general: SFT = floor(sft_ratio * cap), the rest DPO (the paper's counts: SFT = floor(0.4 * Selected));
    chinese: all SFT; math and code: DPO = round(dpo_share * cap) when `dpo_share` names the dataset.
    """
    if category == "general":
        n_sft = math.floor(rules.sft_ratio * cap + 1e-9)
        return n_sft, cap - n_sft
    if category == "chinese":
        return cap, 0
    if dataset in rules.dpo_share:
        n_dpo = round(rules.dpo_share[dataset] * cap)
        return cap - n_dpo, n_dpo
    return None


def _cap_after_pairing(decisions: dict[str, dict], rules: Rules) -> None:
    """Apply `max_per_dataset` to the prompts routed to SFT or DPO, in place: the rest become drop/over_cap.

    The paper's counts are taken after its filters (for every dataset of its table Selected = SFT + DPO), so a cap
    here draws the dataset's Selected from the prompts that survived scoring and pairing, SFT and DPO apart
    (`cap_targets`). A route with fewer prompts than its target keeps them all; nothing moves between routes.
    """
    routed: dict[str, dict[str, list[str]]] = {}
    for pid, d in decisions.items():
        if d["route"] in ("sft", "dpo") and rules.max_per_dataset.get(d["dataset"]) is not None:
            routed.setdefault(d["dataset"], {"sft": [], "dpo": [], "category": d["category"]})[d["route"]].append(pid)
    for dataset, by_route in routed.items():
        cap = rules.max_per_dataset[dataset]
        targets = cap_targets(by_route["category"], cap, rules, dataset)
        if targets is None:
            keep = _draw(by_route["sft"] + by_route["dpo"], cap, rules.seed, f"cap\0{dataset}")
        else:
            keep = (_draw(by_route["sft"], targets[0], rules.seed, f"cap-sft\0{dataset}")
                    | _draw(by_route["dpo"], targets[1], rules.seed, f"cap-dpo\0{dataset}"))
        for pid in by_route["sft"] + by_route["dpo"]:
            if pid not in keep:
                decisions[pid]["route"], decisions[pid]["reason"] = "drop", "over_cap"


def check_scored(scored: pd.DataFrame, where: str = "scored table") -> None:
    """Raise ValueError naming the column, or the row and field, that a pairing rule cannot use."""
    missing = [c for c in REQUIRED if c not in scored.columns]
    categories = set(scored.get("category", []))
    missing += ["correct"] * ("math" in categories and "correct" not in scored.columns)
    missing += [c for c in ("static_ok", "tests_passed") if "code" in categories and c not in scored.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    bad_cat = scored[~scored["category"].isin(CATEGORIES)]
    if len(bad_cat):
        row = bad_cat.index[0]
        raise ValueError(f"{where}: row {row} field 'category' is {bad_cat['category'].iloc[0]!r}, not {CATEGORIES}")
    scores = pd.to_numeric(scored["rm_score"], errors="coerce")
    bad = scored[~np.isfinite(scores.to_numpy(dtype=float))]
    if len(bad):
        r = bad.iloc[0]
        raise ValueError(f"{where}: row {bad.index[0]} (prompt_id {r['prompt_id']}, {r['source_model']} "
                         f"#{r['sample_index']}) field 'rm_score' is {r['rm_score']!r}, not a finite number")
    mixed = scored.groupby("prompt_id")["category"].nunique()
    if (mixed > 1).any():
        raise ValueError(f"{where}: prompt_id {mixed[mixed > 1].index[0]} has rows of several categories")


def plan(scored: pd.DataFrame, **rules: Any) -> pd.DataFrame:
    """One row per prompt: route (sft | dpo | drop), reason, and the rows (index labels) it uses."""
    rules_ = Rules(**rules)
    check_scored(scored)
    decisions: dict[str, dict] = {}
    for pid, (dataset, category, resps) in sorted(_responses_by_prompt(scored).items()):
        decisions[pid] = {"dataset": dataset, "category": category, **_decision(resps, category, rules_)}
    _split_general(decisions, rules_)
    _cap_after_pairing(decisions, rules_)
    return pd.DataFrame([_flat(pid, d) for pid, d in decisions.items()],
                        columns=["prompt_id", "dataset", "category", "route", "reason", "sft_row", "chosen_row",
                                 "rejected_row", "gap"])


def _responses_by_prompt(scored: pd.DataFrame) -> dict[str, tuple[str, str, list[Resp]]]:
    """prompt_id -> (dataset, category, its responses as Resp tuples)."""
    out: dict[str, tuple[str, str, list[Resp]]] = {}
    cols = [scored[c].tolist() if c in scored else [None] * len(scored)
            for c in ("prompt_id", "dataset", "category", "source_model", "sample_index", "rm_score", "response",
                      "correct", "static_ok", "tests_passed")]
    for row, (pid, dataset, cat, source, k, score, text, correct, static_ok, passed) in zip(scored.index, zip(*cols)):
        resp = Resp(row, str(source), int(k), float(score), text, _verdict(cat, correct, static_ok, passed))
        out.setdefault(pid, (dataset, cat, []))[2].append(resp)
    return out


def _flat(pid: str, d: dict) -> dict:
    pair = d["pair"] or {}
    used = d["route"] == "dpo"
    return {"prompt_id": pid, "dataset": d["dataset"], "category": d["category"], "route": d["route"],
            "reason": d["reason"], "sft_row": d["sft"].row if d["route"] == "sft" else None,
            "chosen_row": pair["chosen"].row if used else None,
            "rejected_row": pair["rejected"].row if used else None, "gap": pair.get("gap")}


# ----------------------------------------------------------------------------------------------------------------
# the released FuseChat-3.0 schemas


def sft_frame(scored: pd.DataFrame, rows: list) -> pd.DataFrame:
    """SFT rows in FuseChat-3.0-SFT-Data's schema (ShareGPT conversations) plus prompt_id, category, rm_score."""
    picked = scored.loc[rows]
    conversations = [[{"from": "human", "value": p}, {"from": "gpt", "value": r}]
                     for p, r in zip(picked["prompt"], picked["response"])]
    return pd.DataFrame({"dataset": picked["dataset"].tolist(), "source_model": picked["source_model"].tolist(),
                         "conversations": conversations, "prompt_id": picked["prompt_id"].tolist(),
                         "category": picked["category"].tolist(), "rm_score": picked["rm_score"].astype(float).tolist()},
                        columns=SFT_COLUMNS)


def dpo_frame(scored: pd.DataFrame, chosen_rows: list, rejected_rows: list) -> pd.DataFrame:
    """DPO rows in FuseChat-3.0-DPO-Data's schema (prompt / chosen / rejected message lists) plus scores."""
    c, r = scored.loc[chosen_rows], scored.loc[rejected_rows]
    return pd.DataFrame({
        "dataset": c["dataset"].tolist(), "source_model": c["source_model"].tolist(),
        "prompt": [[{"content": p, "role": "user"}] for p in c["prompt"]],
        "chosen": [[{"content": t, "role": "assistant"}] for t in c["response"]],
        "rejected": [[{"content": t, "role": "assistant"}] for t in r["response"]],
        "chosen_score": c["rm_score"].astype(float).tolist(), "rejected_score": r["rm_score"].astype(float).tolist(),
        "prompt_id": c["prompt_id"].tolist(), "category": c["category"].tolist(),
        "rejected_source_model": r["source_model"].tolist()}, columns=DPO_COLUMNS)


def build_sets(scored: pd.DataFrame, *, sft_ratio: float = 0.4, gap_min: float = 0.01, gap_max: float = 0.1,
               pairing: str = "same_source", seed: int = 0, **rules: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SFT rows, DPO rows) from a 03 scored table. Extra keyword rules: see `Rules` and the module docstring."""
    sets, _ = build_sets_with_plan(scored, sft_ratio=sft_ratio, gap_min=gap_min, gap_max=gap_max, pairing=pairing,
                                   seed=seed, **rules)
    return sets


def build_sets_with_plan(scored: pd.DataFrame, **rules: Any) -> tuple[tuple[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
    scored = scored.reset_index(drop=True)
    decisions = plan(scored, **rules)
    sft_rows = decisions.loc[decisions["route"] == "sft", "sft_row"].astype(int).tolist()
    dpo = decisions[decisions["route"] == "dpo"]
    sets = (sft_frame(scored, sft_rows),
            dpo_frame(scored, dpo["chosen_row"].astype(int).tolist(), dpo["rejected_row"].astype(int).tolist()))
    return sets, decisions


# ----------------------------------------------------------------------------------------------------------------
# the step


@dataclass
class PairsConfig(SeededStepConfig):
    STEP: ClassVar[str] = "04_pairs"

    pairs_sft_ratio: float = field(default=0.4, metadata={"help": "general prompts' SFT share (paper 4:6)"})
    # Defaults are the toy profile's: the toy RM's logits span a wider scale than ArmoRM's (paper: 0.01-0.1).
    pairs_gap_min: float = field(default=0.05, metadata={"help": "min RM(chosen) - RM(rejected)"})
    pairs_gap_max: float = field(default=10.0, metadata={"help": "max RM(chosen) - RM(rejected)"})
    pairs_gap_inclusive: bool = field(default=True, metadata={"help": "bounds are allowed gaps [U]"})
    pairs_gap_tol: float = field(default=1e-6, metadata={"help": "a gap this close to a bound is on it"})
    pairs_pairing: str = field(default="same_source", metadata={"help": "same_source | cross_source (ablation)"})
    pairs_pair_source: str = field(default="best_response", metadata={"help": "best_response | best_valid [U]"})
    pairs_split_order: str = field(default="filter_then_split",
                                   metadata={"help": "filter_then_split | split_then_filter [U]"})
    pairs_code_gap_filter: bool = field(default=True, metadata={"help": "gap window applies to code pairs [U]"})
    pairs_math_pair_source: str = field(default="best_response",
                                        metadata={"help": "math's pair source: best_response | best_valid [U]"})
    pairs_max_per_dataset: dict = field(default_factory=dict,
                                        metadata={"help": "dataset -> Selected, drawn after pairing (paper counts)"})
    pairs_dpo_share: dict = field(default_factory=dict,
                                  metadata={"help": "math/code dataset -> DPO share of its capped Selected"})
    pairs_exclude_sources: list[str] = field(default_factory=list,
                                             metadata={"help": "sources left out (leave-one-source-out ablation)"})

    def __post_init__(self) -> None:
        super().__post_init__()  # types; pairs_sft_ratio in [0, 1], pairs_gap_tol >= 0, finite numbers
        if self.pairs_gap_min > self.pairs_gap_max:
            raise invalid(f"key 'pairs_gap_min' ({self.pairs_gap_min}) must be <= key 'pairs_gap_max' "
                          f"({self.pairs_gap_max}): no gap fits the window", "pairs_gap_min", "pairs_gap_max")
        for key, allowed in (("pairs_pairing", ("same_source", "cross_source")),
                             ("pairs_pair_source", ("best_response", "best_valid")),
                             ("pairs_math_pair_source", ("best_response", "best_valid")),
                             ("pairs_split_order", ("filter_then_split", "split_then_filter"))):
            if getattr(self, key) not in allowed:
                raise invalid(f"key '{key}' must be one of {allowed}, got {getattr(self, key)!r}", key)
        from fusechat_utils.prompt_sources import DATASETS

        for key in ("pairs_max_per_dataset", "pairs_dpo_share"):
            value = getattr(self, key)
            unknown = sorted(set(value) - set(DATASETS))
            if unknown:
                raise invalid(f"key '{key}' names unknown dataset(s) {unknown}; known: {list(DATASETS)}", key)
        for name, cap in self.pairs_max_per_dataset.items():
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
                raise invalid(f"key 'pairs_max_per_dataset': the cap of {name} must be an int >= 0 (or null: no "
                              f"cap), got {cap!r}", "pairs_max_per_dataset")
        for name, share in self.pairs_dpo_share.items():
            if DATASETS[name].category not in ("math", "code"):
                raise invalid(f"key 'pairs_dpo_share': {name} is {DATASETS[name].category}; only math and code "
                              f"datasets take a DPO share (general: pairs_sft_ratio; chinese: SFT only)",
                              "pairs_dpo_share")
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
                raise invalid(f"key 'pairs_dpo_share': the share of {name} must be a number in [0, 1], got "
                              f"{share!r}", "pairs_dpo_share")
        self.rules()

    def rules(self) -> dict[str, Any]:
        kwargs = {"sft_ratio": self.pairs_sft_ratio, "gap_min": self.pairs_gap_min, "gap_max": self.pairs_gap_max,
                  "pairing": self.pairs_pairing, "seed": self.seed, "pair_source": self.pairs_pair_source,
                  "split_order": self.pairs_split_order, "gap_inclusive": self.pairs_gap_inclusive,
                  "gap_tol": self.pairs_gap_tol, "code_gap_filter": self.pairs_code_gap_filter,
                  "math_pair_source": self.pairs_math_pair_source, "max_per_dataset": dict(self.pairs_max_per_dataset),
                  "dpo_share": dict(self.pairs_dpo_share)}
        Rules(**kwargs)  # raises on a bad choice, before any work
        return kwargs


def reasons_table(decisions: pd.DataFrame) -> pd.DataFrame:
    """Prompts per dataset by route and reason: why each prompt went where it went, none silent."""
    table = decisions.fillna({"reason": "-"}).groupby(["dataset", "category", "route", "reason"]).size()
    return table.rename("prompts").reset_index()


def run(cfg: PairsConfig) -> dict[str, Any]:
    """Read 03's scored.parquet; write sft.parquet, dpo.parquet, decisions.parquet, reasons.csv, composition.csv."""
    from fusechat_utils.composition import composition_table
    from fusechat_utils.io import atomic_path, read_parquet, write_parquet

    path = cfg.step_dir.parent / "03_scoring" / "scored.parquet"
    scored = read_parquet(path)  # missing, corrupt or truncated: an error naming the file and 03_scoring
    check_scored(scored, where=str(path))
    unknown = set(cfg.pairs_exclude_sources) - set(scored["source_model"])
    if unknown:
        raise ValueError(f"pairs_exclude_sources: {sorted(unknown)} not among the sources in {path}")
    scored = scored[~scored["source_model"].isin(cfg.pairs_exclude_sources)]
    (sft, dpo), decisions = build_sets_with_plan(scored, **cfg.rules())
    prompts_path = cfg.step_dir.parent / "01_prompts" / "prompts.parquet"
    prompts = read_parquet(prompts_path) if prompts_path.exists() else scored.drop_duplicates("prompt_id")
    capped = [d for d, cap in cfg.pairs_max_per_dataset.items() if cap is not None]
    composition = composition_table(prompts, sft, dpo, selected_after_pairing=capped)
    reasons = reasons_table(decisions)
    out = cfg.step_dir
    write_parquet(out / "sft.parquet", sft)
    write_parquet(out / "dpo.parquet", dpo)
    write_parquet(out / "decisions.parquet", decisions)
    for name, table in (("composition.csv", composition), ("reasons.csv", reasons)):
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, index=False)
    return {"sft": sft, "dpo": dpo, "decisions": decisions, "composition": composition, "reasons": reasons,
            "n_sft": len(sft), "n_dpo": len(dpo), "path": out}
