"""05_sft / 06_dpo options: `*_trainer_args` checked when the config is built and passed to TRL; LoRA trains an
adapter that is merged into a plain model; QLoRA without a GPU stops before anything runs."""

import json

import pytest
import torch
from test_train_sft import StopAt, build_pairs, build_tiny_model, sft_cfg

from fusechat_utils.config import ParamError, load_profile
from fusechat_utils.errors import UserError
from fusechat_utils.train_dpo import DPOStepConfig, run_dpo
from fusechat_utils.train_sft import SFTStepConfig, run_sft

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def lora_sft(tmp_path_factory):
    """One LoRA SFT run (8 steps) on a tiny Qwen2, with two extra trainer options; its run folder and base."""
    root = tmp_path_factory.mktemp("options")
    base, run = build_tiny_model(root / "base"), root / "run"
    build_pairs(run)
    cfg = sft_cfg(run, base, sft_max_steps=8, sft_save_steps=4, sft_peft="lora", sft_lora_r=4, sft_lora_alpha=8,
                  sft_trainer_args={"weight_decay": 0.1, "max_grad_norm": 0.5})
    return {"run": run, "base": base, "result": run_sft(cfg)}


# ---------------------------------------------------------------------------------------------------------------
# trainer args


@pytest.mark.parametrize("cls, key", [(SFTStepConfig, "sft_trainer_args"), (DPOStepConfig, "dpo_trainer_args")])
def test_an_unknown_trainer_arg_fails_when_the_config_is_built_naming_it_and_the_closest(cls, key):
    with pytest.raises(ParamError, match=rf"key '{key}': 'weight_decy' is not an option of trl\.\w+Config "
                                         r"\(closest: weight_decay\)") as err:
        cls(**{key: {"weight_decy": 0.1}})
    assert err.value.keys == (key,)
    # a profile names where it came from, before any step runs
    with pytest.raises(ParamError, match=rf"^--set: key '{key}': 'weight_decy'"):
        load_profile("toy", {key: {"weight_decy": 0.1}})


@pytest.mark.parametrize("key, option, param", [
    ("sft_trainer_args", "learning_rate", "sft_learning_rate"),
    ("sft_trainer_args", "output_dir", "run_dir"),
    ("sft_trainer_args", "gradient_accumulation_steps", "sft_global_batch_size"),
    ("dpo_trainer_args", "beta", "dpo_beta"),
    ("dpo_trainer_args", "loss_type", "dpo_loss_type"),
    ("dpo_trainer_args", "warmup_steps", "dpo_warmup_ratio"),
])
def test_an_option_the_kit_sets_from_its_own_param_is_refused_naming_that_param(key, option, param):
    cls = SFTStepConfig if key.startswith("sft_") else DPOStepConfig
    with pytest.raises(ParamError, match=rf"'{option}' is set by the kit from its param '{param}': set '{param}'"):
        cls(**{key: {option: 1}})


def test_valid_trainer_args_reach_the_trainer(lora_sft):
    args = torch.load(lora_sft["run"] / "05_sft" / "checkpoints" / "checkpoint-8" / "training_args.bin",
                      weights_only=False)
    assert (args.weight_decay, args.max_grad_norm) == (0.1, 0.5)
    assert args.learning_rate == 3e-3 and args.max_steps == 8  # the kit's own params still apply


# ---------------------------------------------------------------------------------------------------------------
# LoRA / QLoRA


def test_lora_sft_merges_the_adapter_into_a_plain_model_of_the_base_architecture(lora_sft):
    from transformers import AutoConfig, AutoModelForCausalLM

    step = lora_sft["run"] / "05_sft"
    assert lora_sft["result"]["metrics"]["steps"] == 8 and lora_sft["result"]["metrics"]["peft"] == "lora"
    assert all((step / "adapter" / f).exists() for f in ("adapter_config.json", "adapter_model.safetensors"))
    assert not (step / "model" / "adapter_config.json").exists()  # 06 and 07 read a normal model
    assert json.loads((step / "adapter" / "adapter_config.json").read_text())["r"] == 4
    base_cfg, merged_cfg = (AutoConfig.from_pretrained(p).to_dict() for p in (lora_sft["base"], step / "model"))
    for k in ("architectures", "model_type", "hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size"):
        assert merged_cfg[k] == base_cfg[k], k
    before = AutoModelForCausalLM.from_pretrained(lora_sft["base"]).state_dict()
    after = AutoModelForCausalLM.from_pretrained(step / "model").state_dict()
    assert after.keys() == before.keys()  # no lora_A / lora_B left
    for name in before:
        changed = not torch.equal(before[name], after[name])
        assert changed == any(f"{m}.weight" in name for m in LINEAR), name  # the LoRA targets, and only them


def test_lora_dpo_uses_the_sft_model_with_the_adapter_disabled_as_reference_and_merges(lora_sft):
    from transformers import AutoModelForCausalLM

    run = lora_sft["run"]
    cfg = DPOStepConfig(run_dir=str(run), target_model=lora_sft["base"], dpo_max_steps=4, dpo_save_steps=2,
                        dpo_global_batch_size=8, dpo_per_device_train_batch_size=8, dpo_learning_rate=5e-3,
                        dpo_eval_fraction=0.2, dpo_logging_steps=1, dpo_max_length=64, dpo_peft="lora",
                        dpo_lora_r=4, dpo_trainer_args={"max_grad_norm": 0.5})
    m = run_dpo(cfg)["metrics"]
    assert m["steps"] == 4 and m["peft"] == "lora"
    assert set(m["checkpoint_choice"]["candidates"]) == {"checkpoint-2", "checkpoint-4"}  # adapters reloaded
    log = json.loads((run / "06_dpo" / "log_history.json").read_text())
    # step 1's loss is computed before any update: a fresh adapter (B = 0) equals its reference exactly -> ln 2
    assert log[0]["loss"] == pytest.approx(0.693147, abs=1e-4)
    sft = AutoModelForCausalLM.from_pretrained(run / "05_sft" / "model").state_dict()
    dpo = AutoModelForCausalLM.from_pretrained(run / "06_dpo" / "model").state_dict()
    assert dpo.keys() == sft.keys() and any(not torch.equal(sft[k], dpo[k]) for k in sft)
    assert (run / "06_dpo" / "adapter" / "adapter_model.safetensors").exists()


def test_a_stopped_lora_run_resumes_from_its_adapter_checkpoint(lora_sft, tmp_path):
    """Same params as the fixture's run, stopped at step 4 and resumed: the same merged weights at step 8."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    build_pairs(run)
    cfg = sft_cfg(run, lora_sft["base"], sft_max_steps=8, sft_save_steps=4, sft_peft="lora", sft_lora_r=4,
                  sft_lora_alpha=8, sft_trainer_args={"weight_decay": 0.1, "max_grad_norm": 0.5})
    assert run_sft(cfg, callbacks=[StopAt(4).cb])["metrics"]["steps"] == 4
    assert run_sft(cfg)["metrics"]["steps"] == 8
    ours, whole = (load_file(r / "05_sft" / "model" / "model.safetensors") for r in (run, lora_sft["run"]))
    assert all(torch.allclose(ours[k], whole[k], atol=1e-6) for k in whole)


@pytest.mark.slow
def test_a_launched_two_process_lora_run_merges_once_and_keeps_its_options(tmp_path):
    """accelerate launch (cpu_ddp): the options travel in launch_config.json; rank 0 alone merges the adapter."""
    model, run = build_tiny_model(tmp_path / "base"), tmp_path / "run"
    build_pairs(run, n_sft=40)
    cfg = sft_cfg(run, model, sft_max_steps=4, sft_save_steps=4, sft_peft="lora", sft_lora_r=4,
                  sft_lora_target_modules=["q_proj", "v_proj"], sft_trainer_args={"weight_decay": 0.1},
                  sft_num_processes=2, sft_accelerate_config="params/accelerate/cpu_ddp.yaml")
    m = run_sft(cfg)["metrics"]
    assert m["num_processes"] == 2 and m["steps"] == 4 and m["peft"] == "lora"
    sent = json.loads((run / "05_sft" / "launch_config.json").read_text())
    assert (sent["sft_trainer_args"], sent["sft_lora_target_modules"]) == ({"weight_decay": 0.1}, ["q_proj", "v_proj"])
    adapter = json.loads((run / "05_sft" / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
    assert (run / "05_sft" / "model" / "model.safetensors").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_qlora_without_a_gpu_stops_before_anything_runs(tmp_path):
    model = build_tiny_model(tmp_path / "base")
    build_pairs(tmp_path / "run")
    with pytest.raises(UserError, match="'sft_peft' is 'qlora'.*needs a CUDA GPU, and this machine has none"):
        run_sft(sft_cfg(tmp_path / "run", model, sft_peft="qlora"))
    assert not (tmp_path / "run" / "05_sft").exists()  # checked before the step folder is touched
    with pytest.raises(ParamError, match=r"^--set: key 'dpo_peft' is 'qlora'.*CUDA GPU"):
        load_profile("toy", {"target_model": model, "run_dir": str(tmp_path / "run"), "dpo_peft": "qlora"},
                     steps=["06_dpo"])
    assert load_profile("toy", {"dpo_peft": "qlora"}, steps=[])["dpo_peft"] == "qlora"  # other steps still run


def test_lora_settings_are_checked_when_the_config_is_built():
    with pytest.raises(ParamError, match="key 'sft_peft' must be one of none, lora, qlora, got 'qlora4'"):
        SFTStepConfig(sft_peft="qlora4")
    with pytest.raises(ParamError, match=r"key 'dpo_lora_dropout' must be in \[0, 1\)"):
        DPOStepConfig(dpo_lora_dropout=1.0)
    with pytest.raises(ParamError, match="key 'sft_lora_r' must be >= 1"):
        SFTStepConfig(sft_lora_r=0)
