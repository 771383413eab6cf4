"""What steps 05_sft (train_sft.py) and 06_dpo (train_dpo.py) share: their config checks, the TRL arguments built
from the prefixed params, the in-process-or-launched run, and what a finished run writes.

Usage: `run_step(cfg, "sft_", train_sft)` in each step's `run_*`; `trainer_args(cfg, "dpo_", beta=...)` for the
TRL config; `finish(...)` after `trainer.train()`. Process plumbing (accelerate launch, resume points, logs) is
train_launch.py's; the TRL options and LoRA are train_options.py's.
"""

from __future__ import annotations

import time

from fusechat_utils import train_data
from fusechat_utils import train_options as options
from fusechat_utils.config import invalid
from fusechat_utils.io import read_json, write_json
from fusechat_utils.train_launch import (
    grad_accumulation, history_frame, launch, needs_launch, peak_memory, plot_history, prepare_resume, world_size,
)

DATA_HELP = ("'': this run's 04_pairs/{name}.parquet; else a .parquet/.jsonl/.json file or a hub dataset id"
             "[@revision], in the released FuseChat-3.0 schema")


def check_batches(cfg, prefix: str) -> None:
    """The global batch must split exactly into per-device batch x processes x accumulation (as train_launch)."""
    keys = [f"{prefix}global_batch_size", f"{prefix}per_device_train_batch_size", f"{prefix}num_processes"]
    total, per_device, procs = (getattr(cfg, k) for k in keys)
    if total % (per_device * procs):
        raise invalid(f"key '{keys[0]}' ({total}) must be a multiple of '{keys[1]}' x '{keys[2]}' "
                      f"({per_device} x {procs} = {per_device * procs})", *keys)


def check_options(cfg, prefix: str) -> None:
    """`<p>data`, `<p>trainer_args` and the LoRA keys, checked when the config is built (train_options)."""
    train_data.check_value(getattr(cfg, f"{prefix}data"), f"{prefix}data")
    options.check_trainer_args(cfg, prefix)
    options.check_peft(cfg, prefix)


def trainer_args(cfg, prefix: str, **kit) -> dict:
    """The TRL config's arguments: what both trainers share, from the prefixed params (CPU flags when there is no
    GPU), then the step's own (`kit`), then `<p>trainer_args` on top (its keys never name a kit param: checked)."""
    import torch

    p = {k[len(prefix):]: v for k, v in vars(cfg).items() if k.startswith(prefix)}
    cpu = not torch.cuda.is_available()
    shared = dict(
        output_dir=str(cfg.step_dir / "checkpoints"), learning_rate=p["learning_rate"],
        num_train_epochs=p["num_train_epochs"], max_steps=p["max_steps"], max_length=p["max_length"],
        per_device_train_batch_size=p["per_device_train_batch_size"],
        gradient_accumulation_steps=grad_accumulation(p["global_batch_size"], p["per_device_train_batch_size"],
                                                      world_size()),
        lr_scheduler_type=p["lr_scheduler_type"], warmup_steps=p["warmup_ratio"], save_strategy="steps",
        save_steps=p["save_steps"], logging_steps=p["logging_steps"], seed=cfg.seed, data_seed=cfg.seed,
        gradient_checkpointing=p["gradient_checkpointing"], report_to="none", use_cpu=cpu, bf16=not cpu,
        dataloader_num_workers=0, ddp_backend="gloo" if cpu and world_size() > 1 else None,
        ddp_find_unused_parameters=False,  # causal LMs use every parameter; True costs a graph walk per step
    )
    user = getattr(cfg, f"{prefix}trainer_args")  # may replace report_to, bf16...
    return {**shared, **kit, **options.tracking(cfg, user.get("report_to")), **user}


def finish(cfg, trainer, started: float, plot_keys: list[str], extra: dict, resumed_step: int = 0) -> dict:
    """Save the model + tokenizer, metrics.json and plots (main process); return what the notebook shows."""
    hist = whole_run_log(trainer.state.log_history, resumed_step)
    losses = [r["loss"] for r in hist if "loss" in r]
    metrics = {
        "steps": trainer.state.global_step, "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None, "wall_time_s": round(time.time() - started, 2),
        "num_processes": world_size(), "samples_seen": trainer.state.global_step * trainer.args.per_device_train_batch_size
        * trainer.args.gradient_accumulation_steps * world_size(), **peak_memory(), **extra,
    }
    if trainer.is_world_process_zero():
        write_json(cfg.step_dir / "metrics.json", metrics)
        write_json(cfg.step_dir / "log_history.json", hist)
        plot_history(hist, plot_keys, cfg.step_dir)
    return {"metrics": metrics, "log": history_frame(hist)}


def whole_run_log(hist: list[dict], resumed_step: int) -> list[dict]:
    """The log as one uninterrupted run would have written it. After a resume from `resumed_step`, transformers
    averages its end-of-training `train_loss` over the steps since the resume only, and TRL restarts its running
    `num_tokens` from 0: both are recomputed over the whole run, so a killed and resumed run logs what the same run
    uninterrupted logs (tests/test_kill_resume.py)."""
    offset = max((r["num_tokens"] for r in hist if "num_tokens" in r and r.get("step", 0) <= resumed_step),
                 default=0) if resumed_step else 0
    hist = [{**r, "num_tokens": r["num_tokens"] + offset} if "num_tokens" in r and r.get("step", 0) > resumed_step
            else r for r in hist]
    logged = [(r["step"], r["loss"]) for r in hist if "loss" in r]
    if not logged:
        return hist
    total, prev = 0.0, 0
    for step, loss in logged:  # each logged loss is the mean over its logging interval
        total, prev = total + loss * (step - prev), step
    return [{**r, "train_loss": total / prev} if "train_loss" in r else r for r in hist]


def run_step(cfg, prefix: str, train, callbacks=None) -> dict:
    """Check the machine, make the resume point, then train in this process, or launch accelerate when the step
    wants more than one process (each rank then runs `python -m fusechat_utils.train`)."""
    cfg.check_machine()
    prepare_resume(cfg, prefix)
    config, procs = getattr(cfg, f"{prefix}accelerate_config"), getattr(cfg, f"{prefix}num_processes")
    if needs_launch(config, procs):
        launch(cfg.STEP, cfg, config, procs)
        return load_result(cfg)
    return train(cfg, callbacks)


def load_result(cfg) -> dict:
    """After a launched run: the same result dict, read back from the step folder."""
    hist = read_json(cfg.step_dir / "log_history.json")
    return {"metrics": read_json(cfg.step_dir / "metrics.json"), "log": history_frame(hist)}
