"""The paper profiles reproduce the paper's Selected / SFT / DPO per dataset (issue 12 item 2) on synthetic scored
data: every dataset gets more prompts than the paper kept, of each kind a route needs (general prompts with and
without a valid pair; math and code prompts with a valid pair, with only a correct/passing response, with none;
Chinese), and 04 runs with a paper profile's own params."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from fusechat_utils import pairs
from fusechat_utils.config import load_profile
from fusechat_utils.paper import paper_table
from fusechat_utils.prompt_sources import DATASETS

MARGIN = 1.5  # prompts per dataset = 1.5 x the paper's Selected
# share of each dataset's prompts of each kind (general: valid pair / gap too wide; math, code: valid pair /
# correct-or-passing only / none correct-or-passing)
KINDS = {"general": {"valid": 0.85, "wide": 0.15}, "math": {"pair": 0.25, "sft": 0.65, "none": 0.10},
         "code": {"pair": 0.35, "sft": 0.60, "none": 0.05}, "chinese": {"sft": 1.0}}
# responses of one prompt per kind: (source, rm_score, verdict)
RESPONSES = {
    "valid": [("A", 0.50, None), ("A", 0.45, None), ("B", 0.30, None)],
    "wide": [("A", 0.50, None), ("A", 0.10, None)],
    # math: the reference (one response, correct) is the top response; Qwen has a correct/incorrect pair
    "pair": [("ref", 0.70, True), ("Q", 0.60, True), ("Q", 0.55, False)],
    "sft": [("ref", 0.70, True), ("Q", 0.40, False)],
    "none": [("Q", 0.60, False), ("Q", 0.50, False)],
}
CODE_RESPONSES = {"pair": [("A", 0.60, True), ("A", 0.55, False)], "sft": [("A", 0.60, True), ("A", 0.58, True)],
                  "none": [("A", 0.60, False), ("A", 0.50, False)]}


def synthetic_scored() -> pd.DataFrame:
    paper = paper_table("dataset_composition").set_index("dataset")
    cols = {k: [] for k in ("prompt_id", "dataset", "category", "source_model", "sample_index", "rm_score",
                            "verdict")}
    for name, spec in DATASETS.items():
        n = math.ceil(MARGIN * paper.loc[name, "selected"])
        start = 0
        for kind, share in KINDS[spec.category].items():
            count = round(share * n)
            responses = RESPONSES[kind] if spec.category != "chinese" else [("Qwen", 0.5, None)]
            if spec.category == "code":  # every code source has 8 samples in the paper: no reference source
                responses = CODE_RESPONSES[kind]
            for i in range(start, start + count):
                for k, (source, score, verdict) in enumerate(responses):
                    cols["prompt_id"].append(f"{name}-{i}")
                    cols["dataset"].append(name)
                    cols["category"].append(spec.category)
                    cols["source_model"].append(source)
                    cols["sample_index"].append(k)
                    cols["rm_score"].append(score)
                    cols["verdict"].append(verdict)
            start += count
    df = pd.DataFrame(cols)
    df["prompt"] = df["prompt_id"]
    df["response"] = df["prompt_id"] + " " + df["source_model"] + " #" + df["sample_index"].astype(str)
    verdict = df.pop("verdict")
    df["correct"] = verdict.where(df["category"] == "math", None)
    df["static_ok"] = df["tests_passed"] = verdict.where(df["category"] == "code", None)
    return df


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("paper_counts")
    scored = synthetic_scored()
    for step in ("01_prompts", "03_scoring"):
        (path / step).mkdir()
    scored.drop_duplicates("prompt_id")[["prompt_id", "dataset", "category", "prompt"]].to_parquet(
        path / "01_prompts" / "prompts.parquet")
    scored.to_parquet(path / "03_scoring" / "scored.parquet")
    return path


PAPER_PROFILES = ["llama3.1-8b", "qwen2.5-7b", "gemma2-9b", "llama3.2-3b", "llama3.2-1b"]
CAP_KEYS = ["pairs_max_per_dataset", "pairs_dpo_share", "pairs_math_pair_source", "pairs_sft_ratio",
            "pairs_split_order", "pairs_pair_source", "pairs_gap_min", "pairs_gap_max"]


def test_every_paper_profile_has_the_same_counting_rules():
    first = load_profile(PAPER_PROFILES[0])
    for profile in PAPER_PROFILES[1:]:
        assert {k: load_profile(profile)[k] for k in CAP_KEYS} == {k: first[k] for k in CAP_KEYS}, profile
    assert load_profile("toy")["pairs_max_per_dataset"] == {}  # toy: caps in 01, as before


@pytest.mark.slow
def test_the_paper_profiles_reproduce_the_papers_counts(run_dir):
    params = load_profile("llama3.1-8b")
    fields = {f.name for f in dataclasses.fields(pairs.PairsConfig)}
    cfg = pairs.PairsConfig(**{k: v for k, v in params.items() if k in fields and k != "run_dir"},
                            run_dir=str(run_dir))
    result = pairs.run(cfg)
    table = result["composition"].set_index("dataset")
    paper = paper_table("dataset_composition").set_index("dataset")
    ours = table.loc[paper.index, ["Selected", "SFT", "DPO"]].astype(int)
    expected = paper[["selected", "sft", "dpo"]].set_axis(["Selected", "SFT", "DPO"], axis=1)
    pd.testing.assert_frame_equal(ours, expected, check_dtype=False)
    assert table.loc["Total", ["Selected", "SFT", "DPO"]].tolist() == [158667, 94539, 64128]
    assert (table.loc[paper.index, "Pool"] > table.loc[paper.index, "Selected"]).all()  # the cap did the work
    reasons = result["reasons"]
    assert reasons.loc[reasons["reason"] == "over_cap", "prompts"].sum() > 0
    # every math pair is Qwen's, although the reference is each prompt's top response (best_valid)
    dpo = result["dpo"]
    assert set(dpo.loc[dpo["dataset"] == "OpenMathInstruct-2", "source_model"]) == {"Q"}


def test_math_best_response_gives_no_pair_when_the_reference_is_on_top(run_dir):
    scored = pd.read_parquet(run_dir / "03_scoring" / "scored.parquet")
    math_rows = scored[scored["dataset"] == "OpenMathInstruct-2"].head(3000)  # 1000 prompts of kind "pair"
    plan_br = pairs.plan(math_rows, gap_min=0.01, gap_max=0.1)
    plan_bv = pairs.plan(math_rows, gap_min=0.01, gap_max=0.1, math_pair_source="best_valid")
    assert (plan_br["route"] == "dpo").sum() == 0  # the reference is on top of every prompt here
    assert (plan_bv["route"] == "dpo").sum() == 1000


def test_without_a_cap_after_pairing_nothing_is_dropped_over_cap(run_dir):
    scored = pd.read_parquet(run_dir / "03_scoring" / "scored.parquet")
    part = scored[scored["dataset"].isin(["HelpSteer2", "leetcode"])]
    decisions = pairs.plan(part, gap_min=0.01, gap_max=0.1)
    assert "over_cap" not in set(decisions["reason"])
    capped = pairs.plan(part, gap_min=0.01, gap_max=0.1, max_per_dataset={"HelpSteer2": 100, "leetcode": 50},
                        dpo_share={"leetcode": 0.4})
    used = capped[capped["route"].isin(["sft", "dpo"])].groupby(["dataset", "route"]).size().to_dict()
    assert used == {("HelpSteer2", "sft"): 40, ("HelpSteer2", "dpo"): 60, ("leetcode", "sft"): 30,
                    ("leetcode", "dpo"): 20}
    # the draw is seeded and independent of the row order
    shuffled = part.sample(frac=1.0, random_state=3)
    again = pairs.plan(shuffled, gap_min=0.01, gap_max=0.1, max_per_dataset={"HelpSteer2": 100, "leetcode": 50},
                       dpo_share={"leetcode": 0.4})
    key = lambda d: set(d.loc[d["route"] != "drop", "prompt_id"])  # noqa: E731
    assert key(again) == key(capped)
    assert np.isclose(len(key(capped)), 150)
