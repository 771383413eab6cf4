"""Options of 05_sft / 06_dpo beyond the kit's own params: any TRL trainer option, LoRA / QLoRA through peft, and
experiment trackers.

Usage (the step configs and train_common / train_sft / train_dpo call these; `p` is the step's prefix, "sft_" or "dpo_"):
    check_trainer_args(cfg, p)   # config build: an unknown or kit-owned key in `<p>trainer_args` -> ParamError
    check_peft(cfg, p)           # config build: `<p>peft` in none|lora|qlora, LoRA sizes in range
    check_machine(cfg, p)        # before a run: a tracker not installed, qlora without a CUDA GPU or bitsandbytes
    model, peft_config = load_policy(path, cfg, p), lora_config(cfg, p)
    save_trained(trainer, tok, cfg.step_dir, base=path, peft=cfg.sft_peft)   # model/ (+ adapter/ with LoRA)
    tracking(cfg, report_to)     # {report_to: trackio}: its files in <step>/trackio/, project = the run's name

Trackers (`<p>trainer_args: {report_to: ...}`): trackio (local, no account) writes into the step folder;
tensorboard writes event files under `<step>/checkpoints/runs/`; wandb follows its own WANDB_* variables
(WANDB_MODE=offline without an account). check_machine refuses a tracker whose package is not installed.

With LoRA the step still writes a normal model to `<step>/model/`: the adapter (kept in `<step>/adapter/`) is
merged into a fresh full-precision load of the base, so 06 and 07 never see peft. Under QLoRA the merge is into
the unquantized base: merging into 4-bit weights would round them again.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

from fusechat_utils.config import invalid

PEFT_MODES = ("none", "lora", "qlora")
TRL_CONFIG = {"sft_": "SFTConfig", "dpo_": "DPOConfig"}

# TrainingArguments the kit sets from its own params: refused in <p>trainer_args so each value has one source.
# "{p}" is the step's prefix.
OWNED = {
    "output_dir": "run_dir", "seed": "seed", "data_seed": "seed",
    **{k: "{p}" + k for k in ("learning_rate", "num_train_epochs", "max_steps", "max_length", "lr_scheduler_type",
                              "per_device_train_batch_size", "save_steps", "logging_steps", "gradient_checkpointing")},
    "gradient_accumulation_steps": "{p}global_batch_size", "save_strategy": "{p}save_steps",
    "warmup_steps": "{p}warmup_ratio", "warmup_ratio": "{p}warmup_ratio",
}
DPO_OWNED = {"beta": "dpo_beta", "loss_type": "dpo_loss_type",
             "per_device_eval_batch_size": "dpo_per_device_train_batch_size"}
# report_to names -> the module each needs (transformers would fail only when the trainer is built).
TRACKERS = {"trackio": "trackio", "tensorboard": "tensorboard", "wandb": "wandb"}
TRACKIO_FOLDER = "trackio"
# Options TRL would silently ignore here, and why.
IGNORED = {"model_init_kwargs": "the kit loads the model itself (fusechat_utils.models.load_causal_lm), so TRL "
                                "ignores model_init_kwargs"}


def trl_fields(prefix: str) -> list[str]:
    """The init fields of trl.SFTConfig / trl.DPOConfig (imports trl: only called for a non-empty dict)."""
    import dataclasses

    import trl

    return [f.name for f in dataclasses.fields(getattr(trl, TRL_CONFIG[prefix])) if f.init]


def check_trainer_args(cfg, prefix: str) -> None:
    """ParamError naming `<p>trainer_args` and the bad option: not a field of the TRL config (with the closest
    names), owned by a kit param (naming it), or one TRL would ignore."""
    key, extra = f"{prefix}trainer_args", getattr(cfg, f"{prefix}trainer_args")
    if not extra:
        return
    owned = {**OWNED, **(DPO_OWNED if prefix == "dpo_" else {})}
    fields = trl_fields(prefix)
    for name in extra:
        if not isinstance(name, str):
            raise invalid(f"key '{key}' must map option names to values, got the key {name!r}", key)
        if name in owned:
            param = owned[name].format(p=prefix)
            raise invalid(f"key '{key}': '{name}' is set by the kit from its param '{param}': set '{param}' "
                          f"instead", key)
        if name in IGNORED:
            raise invalid(f"key '{key}': '{name}' is not passed on: {IGNORED[name]}", key)
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=3, cutoff=0.6)
            hint = f"closest: {', '.join(close)}" if close else "no close name"
            raise invalid(f"key '{key}': '{name}' is not an option of trl.{TRL_CONFIG[prefix]} ({hint})", key)


def check_peft(cfg, prefix: str) -> None:
    """ParamError for an unknown `<p>peft` mode or a LoRA setting no run can use."""
    mode = getattr(cfg, f"{prefix}peft")
    if mode not in PEFT_MODES:
        raise invalid(f"key '{prefix}peft' must be one of {', '.join(PEFT_MODES)}, got {mode!r}", f"{prefix}peft")
    r, alpha, dropout, targets = (getattr(cfg, f"{prefix}lora_{k}") for k in ("r", "alpha", "dropout",
                                                                             "target_modules"))
    if r < 1:
        raise invalid(f"key '{prefix}lora_r' must be >= 1, got {r!r}", f"{prefix}lora_r")
    if alpha <= 0:
        raise invalid(f"key '{prefix}lora_alpha' must be > 0, got {alpha!r}", f"{prefix}lora_alpha")
    if not 0 <= dropout < 1:
        raise invalid(f"key '{prefix}lora_dropout' must be in [0, 1), got {dropout!r}", f"{prefix}lora_dropout")
    if not targets or (isinstance(targets, list) and not all(targets)):
        raise invalid(f"key '{prefix}lora_target_modules' must be 'all-linear' or a non-empty list of module "
                      f"names, got {targets!r}", f"{prefix}lora_target_modules")


def check_machine(cfg, prefix: str) -> None:
    """A tracker's package, and for QLoRA a CUDA GPU and bitsandbytes: say so before anything loads or trains,
    never fall back."""
    import importlib.util

    import torch

    check_trackers(cfg, prefix)
    key = f"{prefix}peft"
    if getattr(cfg, key) != "qlora":
        return
    if not torch.cuda.is_available():
        raise invalid(f"key '{key}' is 'qlora': QLoRA loads the base model in 4 bits with bitsandbytes, which needs "
                      f"a CUDA GPU, and this machine has none; set '{key}: lora' to train LoRA on the "
                      f"unquantized model here", key)
    if importlib.util.find_spec("bitsandbytes") is None:
        raise invalid(f"key '{key}' is 'qlora', which needs bitsandbytes: `pip install -e '.[gpu]'`", key)


def _names(report_to) -> list[str]:
    return [report_to] if isinstance(report_to, str) else list(report_to or [])


def check_trackers(cfg, prefix: str) -> None:
    """ParamError when `<p>trainer_args.report_to` names a tracker whose package is not installed."""
    import importlib.util

    key = f"{prefix}trainer_args"
    for name in _names(getattr(cfg, key).get("report_to")):
        module = TRACKERS.get(name)
        if module and importlib.util.find_spec(module) is None:
            raise invalid(f"key '{key}': report_to {name!r} needs the {module} package: `pip install {module}`", key)


def tracking(cfg, report_to) -> dict:
    """The trainer args a tracker needs from the kit (the user's trainer_args still override them). For trackio:
    its files go to `<step>/trackio/`, so a run's curves live with the run (view them with `TRACKIO_DIR=<that
    folder> trackio show`), the project is the run's name and the run is the step."""
    if TRACKIO_FOLDER not in _names(report_to):
        return {}
    point_trackio_at(Path(cfg.step_dir) / TRACKIO_FOLDER)
    no_trackio_dashboard()
    return {"project": Path(cfg.run_dir).name, "run_name": cfg.STEP}


def no_trackio_dashboard() -> None:
    """Make `trackio.init` default to `embed=False`. transformers' TrackioCallback calls it without `embed`, and in
    a notebook kernel (05/06 train inside papermill's kernel) trackio then starts its dashboard server for the
    step's duration and embeds it as an iframe whose URL holds a write token: the executed notebook and
    report.html would carry a dead localhost link and the token. The logs are the same either way."""
    import functools

    import trackio

    init = trackio.init
    if getattr(init, "fusechat_no_embed", False):
        return

    @functools.wraps(init)
    def init_without_dashboard(*args, **kwargs):
        kwargs.setdefault("embed", False)
        return init(*args, **kwargs)

    init_without_dashboard.fusechat_no_embed = True
    trackio.init = init_without_dashboard


def point_trackio_at(folder: Path) -> None:
    """trackio reads TRACKIO_DIR once, when imported, into module constants: set the variable, and re-point a
    trackio already imported in this process (a second step run in one process, as the tests do)."""
    folder = Path(folder).resolve()
    os.environ["TRACKIO_DIR"] = str(folder)
    derived = {"TRACKIO_DIR": folder, "MEDIA_DIR": folder / "media", "ARTIFACTS_DIR": folder / "artifacts"}
    for name, module in list(sys.modules.items()):
        if name == "trackio" or name.startswith("trackio."):
            for attr, value in derived.items():
                if isinstance(getattr(module, attr, None), Path):
                    setattr(module, attr, value)


def lora_config(cfg, prefix: str):
    """The peft.LoraConfig of the step, or None for full fine-tuning."""
    if getattr(cfg, f"{prefix}peft") == "none":
        return None
    from peft import LoraConfig

    return LoraConfig(r=getattr(cfg, f"{prefix}lora_r"), lora_alpha=getattr(cfg, f"{prefix}lora_alpha"),
                      lora_dropout=getattr(cfg, f"{prefix}lora_dropout"),
                      target_modules=getattr(cfg, f"{prefix}lora_target_modules"), task_type="CAUSAL_LM")


def load_policy(path: str, cfg, prefix: str):
    """The model to train: as saved, or for QLoRA 4-bit NF4 with bf16 compute (the QLoRA paper's recipe)."""
    from fusechat_utils.models import load_causal_lm

    if getattr(cfg, f"{prefix}peft") != "qlora":
        return load_causal_lm(path)
    import torch
    from transformers import BitsAndBytesConfig
    from transformers.integrations import is_deepspeed_zero3_enabled

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16,
                               bnb_4bit_quant_storage=torch.bfloat16)  # bf16 storage lets ZeRO-3 / FSDP shard it
    # ZeRO-3 and FSDP place the shards themselves; otherwise each process keeps its copy on its own GPU
    sharded = is_deepspeed_zero3_enabled() or os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
    device_map = None if sharded else {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return load_causal_lm(path, dtype="bfloat16", quantization_config=quant, device_map=device_map)


def save_trained(trainer, tok, step_dir: Path, base: str, peft: str) -> None:
    """`<step>/model/`: the trained model, with a LoRA adapter merged in (the adapter itself in `<step>/adapter/`)."""
    model_dir = Path(step_dir) / "model"
    if peft == "none":
        trainer.save_model(str(model_dir))
    else:
        adapter_dir = Path(step_dir) / "adapter"
        trainer.save_model(str(adapter_dir))  # a PeftModel saves its adapter only
        if trainer.is_world_process_zero():
            tok.save_pretrained(str(adapter_dir))
            merge_adapter(base, adapter_dir, model_dir, tok.pad_token_id)
    if trainer.is_world_process_zero():
        tok.save_pretrained(str(model_dir))


def merge_adapter(base: str, adapter_dir: Path, out_dir: Path, pad_token_id: int | None):
    """Load the base unquantized, merge the adapter into its weights (merge_and_unload), save a plain model."""
    from peft import PeftModel

    from fusechat_utils.models import load_causal_lm

    merged = PeftModel.from_pretrained(load_causal_lm(base), str(adapter_dir)).merge_and_unload()
    # as TRL does to the model it trains, so the merged model pads like the fully fine-tuned one
    merged.config.get_text_config().pad_token_id = pad_token_id
    merged.generation_config.pad_token_id = pad_token_id
    merged.save_pretrained(str(out_dir))
    return merged
