"""The rehearsal of a paper profile: the profile's own values through all seven steps on local stand-ins (real chat
templates, ArmoRM's `.score` output through trust_remote_code, datasets in their real schemas, a loopback judge),
with only the printed keys overridden. Two profiles end to end: a Llama target (LN-DPO) and Gemma (plain DPO)."""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import PIPELINE_TIMEOUT_S

from fusechat_utils.chat_templates import ARMORM, FAMILY_GENERATION_EOS, stand_in_for, stand_in_reward_model
from fusechat_utils.config import PROJECT_ROOT, load_profile
from fusechat_utils.evaluation import alignbench, mt_bench
from fusechat_utils.evaluation.registry import REGISTRY
from fusechat_utils.io import read_json
from fusechat_utils.rehearse import PAPER_PROFILES, overrides
from fusechat_utils.loopback_judge import LoopbackJudge
from fusechat_utils.stand_ins import SUPPLIED, World, hub_models
from fusechat_utils.steps import STEPS

# What a CPU rehearsal may change, and nothing else: where things are, the hub models and datasets, sizes, and the
# GPU-only backends (vLLM, DeepSpeed) and judges.
REHEARSAL_KEYS = {
    "run_dir", "prompts_source", "prompts_fixtures_dir", "prompts_max_per_dataset", "sample_sources", "sample_backend",
    "sample_max_new_tokens", "score_reward_model", "target_model", "eval_backend", "eval_limit",
    "eval_max_tokens_cap", "eval_data_files", "eval_judge_base_url", "eval_judge_options", "sft_accelerate_config",
    "sft_num_processes", "dpo_accelerate_config", "dpo_num_processes",
}
RECIPE_KEYS = ["dpo_loss_type", "dpo_beta", "sft_learning_rate", "dpo_learning_rate", "sft_global_batch_size",
               "dpo_global_batch_size", "sft_lr_scheduler_type", "pairs_pairing", "pairs_gap_min", "pairs_gap_max",
               "pairs_max_per_dataset", "sample_n_general", "sample_n_code", "score_pad_token_id", "eval_benchmarks",
               "eval_judge_models", "sample_dtype", "score_dtype", "sft_max_length", "dpo_max_length",
               "sft_logging_steps", "dpo_logging_steps", "sft_gradient_checkpointing", "dpo_eval_fraction"]


def fake_world(params):
    models = {m: f"/stand-ins/{m.replace('/', '__')}" for m in hub_models(params)}
    return World(PROJECT_ROOT, models, "/stand-ins/fixtures", {n: f"/stand-ins/{f}" for n, f in SUPPLIED.items()})


@pytest.mark.parametrize("profile", PAPER_PROFILES)
def test_a_rehearsal_overrides_only_what_a_cpu_needs(profile):
    params = load_profile(profile)
    changes = overrides(params, fake_world(params), "http://127.0.0.1:1/v1", "outputs/rehearsal/x")
    assert set(changes) == REHEARSAL_KEYS
    assert not set(RECIPE_KEYS) & set(changes)
    old, new, _ = changes["sample_sources"]
    assert [{**s, "model": None} for s in old] == [{**s, "model": None} for s in new]  # sampling params kept
    assert all(s["model"].startswith("/stand-ins/") for s in new)
    assert changes["eval_judge_options"][1] == {"AlpacaEval-2 (LC %)": {"glm": "length_controlled_minimal"}}


def test_stand_ins_carry_each_models_own_template_and_stop_tokens(tmp_path):
    from transformers import AutoTokenizer, GenerationConfig

    user = [{"role": "user", "content": "hi"}]
    rendered = {}
    for model_id in ("google/gemma-2-27b-it", "meta-llama/Llama-3.2-1B-Instruct", "Qwen/Qwen2.5-Math-72B-Instruct",
                     "mistralai/Mistral-Large-Instruct-2407"):
        path = stand_in_for(model_id, tmp_path / model_id.replace("/", "__"))
        tok = AutoTokenizer.from_pretrained(path)
        rendered[model_id] = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        if model_id.startswith("google/"):
            with pytest.raises(Exception, match="System role not supported"):
                tok.apply_chat_template([{"role": "system", "content": "be brief"}, *user], tokenize=False)
            eos = GenerationConfig.from_pretrained(path).eos_token_id
            assert eos == tok.convert_tokens_to_ids(FAMILY_GENERATION_EOS["gemma2"])
    assert rendered["google/gemma-2-27b-it"] == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert "Cutting Knowledge Date: December 2023\nToday Date: " in rendered["meta-llama/Llama-3.2-1B-Instruct"]
    assert rendered["Qwen/Qwen2.5-Math-72B-Instruct"].startswith(
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>")
    assert rendered["mistralai/Mistral-Large-Instruct-2407"] == "<s>[INST] hi[/INST]"


def test_the_armorm_stand_in_scores_through_remote_code_like_armorm(tmp_path):
    from fusechat_utils.scoring import ScoreConfig, load_rm, rm_scores

    path = stand_in_reward_model(tmp_path / "rm")
    cfg = ScoreConfig(score_reward_model=path, score_rm_kind="armorm", score_trust_remote_code=True,
                      score_pad_token_id=128256, score_dtype="float32")
    model, tok = load_rm(cfg)
    assert type(model).__module__.startswith("transformers_modules.")  # the code saved with the model, not the kit's
    prompts, responses = ["Name a cat.", "Name a dog.", "Name a cat."], ["Tom", "Rex, or Max, or Bo", "Felix"]
    batched = rm_scores(model, tok, prompts, responses, batch_size=3, kind="armorm", pad_token_id=128256,
                        progress=False)
    single = [rm_scores(model, tok, [p], [r], batch_size=1, kind="armorm", pad_token_id=128256, progress=False)[0]
              for p, r in zip(prompts, responses)]
    assert batched == pytest.approx(single, abs=1e-5)  # right padding with id 128256 reads the last real token
    assert len(set(batched)) == 3
    ids = tok("Name a cat. Tom", return_tensors="pt")["input_ids"]  # not through the template: no assistant header
    with pytest.raises(ValueError, match="gating token pattern"):
        model(input_ids=ids, attention_mask=torch.ones_like(ids))


def test_the_loopback_judge_answers_in_every_judged_benchmarks_format():
    from openai import OpenAI

    messages = [{"role": "user", "content": "Rate this."}]
    with LoopbackJudge() as judge:
        client = OpenAI(base_url=judge.url, api_key="none")
        text = client.chat.completions.create(model="gpt-4", messages=messages).choices[0].message.content
        alpaca = client.chat.completions.create(model="gpt-4", messages=messages, logprobs=True, top_logprobs=5,
                                                max_tokens=1).choices[0]
    assert 1 <= mt_bench.parse_rating(text) <= 10
    assert alignbench.parse_judgment(text)[1] == mt_bench.parse_rating(text)
    assert re.search(r"\[\[([AB<>=]+)\]\]", text)
    top = alpaca.logprobs.content[0].top_logprobs
    assert {t.token for t in top} == {"m", "M"} and alpaca.message.content == max(top, key=lambda t: t.logprob).token
    assert judge.calls == 2 and judge.requests[1]["logprobs"] is True


def rehearse_cli(profile: str, run_dir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fusechat_utils", "rehearse", "--profile", profile, "--run-dir",
                           str(run_dir), "--quiet"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=PIPELINE_TIMEOUT_S)


def printed_overrides(stdout: str) -> dict[str, str]:
    """key -> 'profile value -> rehearsal value' from the lines between the header and 'kept from the profile'."""
    block = stdout.split(" keys overridden (profile value -> rehearsal value):\n", 1)[1].split("  kept from", 1)[0]
    return dict(re.findall(r"^  (\w+): (.*)$", block, flags=re.M))


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["llama3.2-1b", "gemma2-9b"])
def test_a_paper_profile_rehearses_end_to_end_with_its_own_recipe(profile, tmp_path):
    run_dir = tmp_path / profile
    # The Llama run names its folder relative to the checkout, as the paper profiles do (`outputs/<profile>`):
    # a relative run_dir once sent AlpacaEval's annotator config into the alpaca_eval package's own folder.
    proc = rehearse_cli(profile, os.path.relpath(run_dir, PROJECT_ROOT) if profile.startswith("llama") else run_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = re.search(rf"^rehearsal {re.escape(profile)}: exit 0, \d+ s, (\d+) keys overridden", proc.stdout, re.M)
    assert summary, proc.stdout[-2000:]
    printed = printed_overrides(proc.stdout)
    assert set(printed) == REHEARSAL_KEYS and int(summary.group(1)) == len(REHEARSAL_KEYS)
    assert printed["sample_backend"].startswith("'vllm' -> 'hf'")
    profile_params = load_profile(profile)

    for step in STEPS:  # every step ran with the profile's values, except exactly the printed keys
        manifest = read_json(run_dir / step / "manifest.json")
        assert manifest["outputs"], step
        assert set(manifest["overrides"]) == REHEARSAL_KEYS
        for key, value in manifest["params"].items():
            expected = manifest["overrides"][key] if key in manifest["overrides"] else profile_params[key]
            assert value == expected, (step, key)

    # the recipe reached the trainers: TRL's own configs, as pickled with the checkpoints
    dpo_args = torch.load(next((run_dir / "06_dpo" / "checkpoints").glob("checkpoint-*/training_args.bin")),
                          weights_only=False)
    assert dpo_args.loss_type == [profile_params["dpo_loss_type"]] and dpo_args.beta == profile_params["dpo_beta"]
    assert dpo_args.learning_rate == profile_params["dpo_learning_rate"]
    assert dpo_args.gradient_accumulation_steps == profile_params["dpo_global_batch_size"] // \
        profile_params["dpo_per_device_train_batch_size"]
    # the pairing rules: same-source pairs inside the profile's gap window
    dpo = pd.read_parquet(run_dir / "04_pairs" / "dpo.parquet")
    assert len(dpo) and (dpo.source_model == dpo.rejected_source_model).all()
    gaps = dpo.chosen_score - dpo.rejected_score
    tol = profile_params["pairs_gap_tol"]
    assert gaps.between(profile_params["pairs_gap_min"] - tol, profile_params["pairs_gap_max"] + tol).all()
    scored = pd.read_parquet(run_dir / "03_scoring" / "scored.parquet")
    assert scored.rm_score.notna().all() and scored.rm_score.nunique() > 1
    assert set(scored.source_model) >= {s["name"] for s in profile_params["sample_sources"]}

    results = pd.read_csv(run_dir / "07_eval" / "results.csv")
    assert set(results.stage) == {"base", "sft", "dpo"}
    assert set(results.benchmark) == {n for n, b in REGISTRY.items() if b.kind != "import"}
    notes = read_json(run_dir / "07_eval" / "eval_settings.json")["notes"]
    assert any("LiveBench" in n for n in notes)
    assert ARMORM in hub_models(profile_params)
