"""Every paper profile against the paper's tables that the kit ships (fusechat_utils/data/paper/): the target's
learning rates, DPO beta and loss (length-normalized for the Llama targets), each source's sampling params, the
datasets and their counts. The recipe values the tables do not hold (epochs, batch, max length, samples per
prompt, the reward model, the gap window) are checked against the paper's text, quoted in PAPER_TEXT."""

import math

import pytest

from fusechat_utils.config import load_profile
from fusechat_utils.paper import paper_table
from fusechat_utils.prompt_sources import DATASETS

PAPER_PROFILES = ["llama3.1-8b", "qwen2.5-7b", "gemma2-9b", "llama3.2-3b", "llama3.2-1b"]

# FuseChat-3.0 (arXiv 2503.04222 §3-4 and its README), values no shipped table holds.
PAPER_TEXT = {
    # SFT: 3 epochs, global batch 128, max length 2048, cosine schedule, warmup ratio 0.1
    "sft_num_train_epochs": 3.0, "sft_max_steps": -1, "sft_global_batch_size": 128, "sft_max_length": 2048,
    "sft_lr_scheduler_type": "cosine", "sft_warmup_ratio": 0.1,
    # DPO: 1 epoch, global batch 128, max length 2048, cosine, warmup 0.1, a checkpoint every 100 steps
    "dpo_num_train_epochs": 1.0, "dpo_max_steps": -1, "dpo_global_batch_size": 128, "dpo_max_length": 2048,
    "dpo_lr_scheduler_type": "cosine", "dpo_warmup_ratio": 0.1, "dpo_save_steps": 100,
    # sampling: 5 responses per general prompt and source, 8 per code prompt, 1 Chinese response from Qwen2.5-72B;
    # math from Qwen2.5-Math-72B plus OpenMathInstruct-2's own solution
    "sample_n_general": 5, "sample_n_code": 8, "sample_n_chinese": 1, "sample_keep_math_reference": True,
    "sample_math_sources": ["Qwen2.5-Math-72B-Instruct"], "sample_chinese_sources": ["Qwen2.5-72B-Instruct"],
    # scoring with ArmoRM; SFT:DPO 4:6 for general prompts; same-source pairs with a reward gap in [0.01, 0.1]
    "score_reward_model": "RLHFlow/ArmoRM-Llama3-8B-v0.1", "pairs_sft_ratio": 0.4, "pairs_pairing": "same_source",
    "pairs_gap_min": 0.01, "pairs_gap_max": 0.1,
}
GENERAL_SOURCES = ["gemma-2-27b-it", "Mistral-Large-Instruct-2407", "Qwen2.5-72B-Instruct", "Llama-3.1-70B-Instruct"]


@pytest.fixture(scope="module")
def profiles():
    return {p: load_profile(p) for p in PAPER_PROFILES}


def rows(name, key):
    return {r[key]: r for r in paper_table(name).astype(str).to_dict("records")}


def test_there_is_one_profile_per_target_of_the_paper(profiles):
    assert sorted(p["target_model"] for p in profiles.values()) == sorted(rows("train_hparams", "hf_id"))
    for name, params in profiles.items():
        assert params["run_dir"] == f"outputs/{name}"


@pytest.mark.parametrize("profile", PAPER_PROFILES)
def test_training_hparams_match_train_hparams_csv(profiles, profile):
    params = profiles[profile]
    row = rows("train_hparams", "hf_id")[params["target_model"]]
    assert params["sft_learning_rate"] == float(row["sft_lr"])
    assert params["dpo_learning_rate"] == float(row["dpo_lr"])
    assert params["dpo_beta"] == float(row["dpo_beta"])
    # length-normalized DPO (LN-DPO) for the Llama targets, plain sigmoid DPO for Qwen and Gemma
    assert params["dpo_loss_type"] == {"yes": "sigmoid_norm", "no": "sigmoid"}[row["length_normalized"]]


@pytest.mark.parametrize("profile", PAPER_PROFILES)
def test_sampling_params_per_source_match_sampling_params_csv(profiles, profile):
    params = profiles[profile]
    table = rows("sampling_params", "source_model")
    sources = {s["name"]: s for s in params["sample_sources"]}
    assert set(sources) == set(table)
    for name, row in table.items():
        src = sources[name]
        assert src["model"] == row["hf_id"], name
        assert (src["temperature"], src["top_p"], src["repetition_penalty"]) == \
            (float(row["temperature"]), float(row["top_p"]), float(row["repetition_penalty"])), name
    assert params["sample_general_sources"] == params["sample_code_sources"] == GENERAL_SOURCES


@pytest.mark.parametrize("profile", PAPER_PROFILES)
def test_datasets_and_counts_match_dataset_composition_csv(profiles, profile):
    params = profiles[profile]
    table = paper_table("dataset_composition").set_index("dataset")
    assert params["prompts_datasets"] == list(table.index)
    assert params["prompts_source"] == "hub"
    # 04 draws the paper's Selected per dataset after pairing ...
    assert params["pairs_max_per_dataset"] == {d: int(n) for d, n in table["selected"].items()}
    shares = {}
    for name, row in table.iterrows():
        category = DATASETS[name].category
        if category == "general":  # ... general prompts split SFT:DPO by pairs_sft_ratio (floor, as pairs.py)
            assert math.floor(params["pairs_sft_ratio"] * row["selected"]) == row["sft"], name
        elif category == "chinese":  # ... Chinese prompts are SFT only
            assert row["dpo"] == 0 and row["sft"] == row["selected"], name
        else:  # ... math and code by the paper's own DPO share
            shares[name] = round(row["dpo"] / row["selected"], 6)
    assert params["pairs_dpo_share"] == shares
    # 01 hands sampling a pool 25 % larger than Selected (the kit's margin for prompts 03/04 drop; README Decisions)
    assert params["prompts_max_per_dataset"] == {d: math.ceil(1.25 * n) for d, n in table["selected"].items()}


@pytest.mark.parametrize("profile", PAPER_PROFILES)
def test_recipe_values_match_the_papers_text(profiles, profile):
    params = profiles[profile]
    assert {k: params[k] for k in PAPER_TEXT} == PAPER_TEXT


def test_the_paper_profiles_differ_only_in_the_target_keys(profiles):
    first = profiles[PAPER_PROFILES[0]]
    target_keys = {"run_dir", "target_model", "sft_learning_rate", "dpo_learning_rate", "dpo_beta", "dpo_loss_type"}
    for name, params in profiles.items():
        assert {k for k in params if params[k] != first[k]} <= target_keys, name
