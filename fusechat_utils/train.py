"""Steps 05_sft and 06_dpo: TRL SFTTrainer / DPOTrainer on the 04_pairs sets, in-process or via accelerate launch.

Usage (what notebooks/05_sft.ipynb and 06_dpo.ipynb do):
    cfg = SFTStepConfig.from_params(globals()); result = run_sft(cfg)    # -> <run_dir>/05_sft/model/
    cfg = DPOStepConfig.from_params(globals()); result = run_dpo(cfg)    # -> <run_dir>/06_dpo/model/
Entry point of the launched ranks: python -m fusechat_utils.train --step 05_sft --config launch_config.json

Beyond the kit's params: `sft_trainer_args` / `dpo_trainer_args` pass any other TRL option, and `sft_peft` /
`dpo_peft` (lora, qlora) train a LoRA adapter that is merged into the model the step saves (train_options.py).

Data: `sft_data` / `dpo_data` = '' trains on this run's 04_pairs sets; a .parquet / .jsonl / .json file or a hub
dataset id in the released FuseChat-3.0 schema (or TRL's conversational formats) trains on that instead
(train_data.py). metrics.json records the source and its hash.

SFT data route: the `conversations` become TRL's conversational prompt/completion format (prompt = all turns up
to the last assistant turn, completion = that turn). TRL then trains on completion tokens only for ANY chat
template; `assistant_only_loss=True` would need {% generation %} markers that the paper's hub templates
(Llama-3.1, Qwen2.5, Gemma-2) lack. FuseChat's SFT rows are single-turn, so nothing is lost.

Tracking: `<p>trainer_args: {report_to: trackio}` logs the curves with trackio into `<step>/trackio/`
(train_options.tracking); one progress line per logging step is printed either way (`fusechat run` shows it).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import ClassVar

from fusechat_utils import train_data
from fusechat_utils import train_options as options
from fusechat_utils.config import SeededStepConfig, invalid
from fusechat_utils.io import seed_everything, write_json
from fusechat_utils.train_launch import (
    SampleLog, checkpoint_step, grad_accumulation, history_frame, launch, needs_launch, peak_memory, plot_history,
    prepare_resume, progress_callback, resume_point, world_size,
)

DATA_HELP = ("'': this run's 04_pairs/{name}.parquet; else a .parquet/.jsonl/.json file or a hub dataset id"
             "[@revision], in the released FuseChat-3.0 schema")


@dataclass
class SFTStepConfig(SeededStepConfig):
    STEP: ClassVar[str] = "05_sft"
    target_model: str = field(default="outputs/toy_world/models/target", metadata={"help": "model SFT starts from"})
    sft_data: str = field(default="", metadata={"help": DATA_HELP.format(name="sft")})
    sft_learning_rate: float = field(default=2e-3, metadata={"help": "peak learning rate (paper: per target)"})
    sft_num_train_epochs: float = field(default=3.0, metadata={"help": "epochs over sft.parquet"})
    sft_max_steps: int = field(default=1200, metadata={"help": "optimizer steps (-1: use the epochs)"})
    sft_global_batch_size: int = field(default=32, metadata={"help": "per-device x accumulation x processes"})
    sft_per_device_train_batch_size: int = field(default=32, metadata={"help": "micro-batch per process"})
    sft_max_length: int = field(default=256, metadata={"help": "tokens per example (truncated)"})
    sft_lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    sft_warmup_ratio: float = field(default=0.1, metadata={"help": "warmup as a fraction of the steps"})
    sft_save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps (resume points)"})
    sft_logging_steps: int = field(default=10, metadata={"help": "log loss every N steps"})
    sft_gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    sft_accelerate_config: str = field(default="params/accelerate/single.yaml", metadata={"help": "accelerate config"})
    sft_num_processes: int = field(default=1, metadata={"help": "processes (GPUs, or CPU ranks with cpu_ddp)"})
    sft_peft: str = field(default="none", metadata={
        "help": "none: full fine-tuning; lora; qlora: LoRA on a 4-bit base (CUDA)"})
    sft_lora_r: int = field(default=16, metadata={"help": "LoRA rank (when sft_peft is lora or qlora)"})
    sft_lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha: the update is scaled by alpha / r"})
    sft_lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch's input"})
    sft_lora_target_modules: str | list[str] = field(default="all-linear", metadata={
        "help": "'all-linear' or module names, e.g. [q_proj, v_proj]"})
    sft_trainer_args: dict = field(default_factory=dict, metadata={
        "help": "more trl.SFTConfig options, e.g. {weight_decay: 0.1}"})

    def __post_init__(self) -> None:
        super().__post_init__()  # types; batches, lengths, steps >= 1, lr > 0, warmup in [0, 1] (config.check_values)
        check_batches(self, "sft_")
        check_options(self, "sft_")

    def check_machine(self) -> None:
        train_data.check_exists(self.sft_data, "sft_data")
        options.check_machine(self, "sft_")


@dataclass
class DPOStepConfig(SeededStepConfig):
    STEP: ClassVar[str] = "06_dpo"
    target_model: str = field(default="outputs/toy_world/models/target", metadata={"help": "recorded; DPO starts from 05_sft"})
    dpo_data: str = field(default="", metadata={"help": DATA_HELP.format(name="dpo")})
    dpo_beta: float = field(default=10.0, metadata={"help": "DPO beta (paper: 10 Llama LN-DPO, 0.01 Qwen/Gemma)"})
    dpo_loss_type: str = field(default="sigmoid_norm", metadata={"help": "sigmoid_norm: length-normalized DPO"})
    dpo_learning_rate: float = field(default=5e-5, metadata={"help": "peak learning rate (paper: per target)"})
    dpo_num_train_epochs: float = field(default=2.0, metadata={"help": "epochs over dpo.parquet"})
    dpo_max_steps: int = field(default=-1, metadata={"help": "optimizer steps (-1: use the epochs)"})
    dpo_global_batch_size: int = field(default=8, metadata={"help": "per-device x accumulation x processes"})
    dpo_per_device_train_batch_size: int = field(default=8, metadata={"help": "micro-batch per process"})
    dpo_max_length: int = field(default=256, metadata={"help": "prompt + completion tokens"})
    dpo_lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    dpo_warmup_ratio: float = field(default=0.1, metadata={"help": "warmup as a fraction of the steps"})
    dpo_save_steps: int = field(default=10, metadata={"help": "checkpoint every N steps (paper 100)"})
    dpo_eval_fraction: float = field(default=0.1, metadata={"help": "held-out pairs that pick the checkpoint"})
    dpo_logging_steps: int = field(default=2, metadata={"help": "log every N steps"})
    dpo_gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    dpo_accelerate_config: str = field(default="params/accelerate/single.yaml", metadata={"help": "accelerate config"})
    dpo_num_processes: int = field(default=1, metadata={"help": "processes (GPUs, or CPU ranks with cpu_ddp)"})
    dpo_peft: str = field(default="none", metadata={
        "help": "none: full fine-tuning; lora; qlora: LoRA on a 4-bit base (CUDA)"})
    dpo_lora_r: int = field(default=16, metadata={"help": "LoRA rank (when dpo_peft is lora or qlora)"})
    dpo_lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha: the update is scaled by alpha / r"})
    dpo_lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch's input"})
    dpo_lora_target_modules: str | list[str] = field(default="all-linear", metadata={
        "help": "'all-linear' or module names, e.g. [q_proj, v_proj]"})
    dpo_trainer_args: dict = field(default_factory=dict, metadata={
        "help": "more trl.DPOConfig options, e.g. {weight_decay: 0.1}"})

    def __post_init__(self) -> None:
        super().__post_init__()  # types; beta, lr > 0, eval fraction in [0, 1], batches >= 1 (config.check_values)
        check_batches(self, "dpo_")
        check_options(self, "dpo_")
        if self.dpo_eval_fraction >= 1:
            raise invalid(f"key 'dpo_eval_fraction' must be < 1 (pairs must remain to train on), got "
                          f"{self.dpo_eval_fraction}", "dpo_eval_fraction")

    def check_machine(self) -> None:
        train_data.check_exists(self.dpo_data, "dpo_data")
        options.check_machine(self, "dpo_")


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


def sft_dataset(source):
    """The SFT rows as an HF dataset of prompt/completion message lists; `source`: a train_data.Source or a file."""
    from datasets import Dataset

    if not isinstance(source, train_data.Source):
        source = train_data.Source("file", str(source))
    return Dataset.from_list(train_data.sft_rows(source))


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


def train_sft(cfg: SFTStepConfig, callbacks=None) -> dict:
    from trl import SFTConfig, SFTTrainer

    from fusechat_utils.models import load_tokenizer

    started = time.time()
    seed_everything(cfg.seed)
    source = train_data.resolve(cfg.sft_data, cfg.run_dir, "sft")
    data = sft_dataset(source)
    tok = load_tokenizer(cfg.target_model)
    args = SFTConfig(**trainer_args(cfg, "sft_"))  # before the model: under ZeRO-3 it must exist at load time
    trainer = SFTTrainer(model=options.load_policy(cfg.target_model, cfg, "sft_"), args=args, train_dataset=data,
                         processing_class=tok, callbacks=[*(callbacks or []), progress_callback()],
                         peft_config=options.lora_config(cfg, "sft_"))
    resume = resume_point(args.output_dir)
    trainer.data_collator = SampleLog(trainer.data_collator, cfg.step_dir / "samples", "input_ids",
                                      (checkpoint_step(resume) or 0) * args.gradient_accumulation_steps)
    trainer.train(resume_from_checkpoint=resume)
    options.save_trained(trainer, tok, cfg.step_dir, base=cfg.target_model, peft=cfg.sft_peft)
    extra = {"examples": len(data), "peft": cfg.sft_peft, "data": source.describe(cfg.run_dir)}
    return finish(cfg, trainer, started, ["loss", "learning_rate"], extra, checkpoint_step(resume) or 0)


def run_sft(cfg: SFTStepConfig, callbacks=None) -> dict:
    """Step 05: SFT the target on 04's sft.parquet (or `sft_data`); launches accelerate for more than one process."""
    cfg.check_machine()
    prepare_resume(cfg, "sft_")
    if needs_launch(cfg.sft_accelerate_config, cfg.sft_num_processes):
        launch(cfg.STEP, cfg, cfg.sft_accelerate_config, cfg.sft_num_processes)
        return load_result(cfg)
    return train_sft(cfg, callbacks)


def run_dpo(cfg: DPOStepConfig, callbacks=None) -> dict:
    """Step 06: DPO from 05's model on 04's dpo.parquet (or `dpo_data`), reference = that SFT model; keeps the
    better checkpoint."""
    from fusechat_utils import train_dpo

    cfg.check_machine()
    prepare_resume(cfg, "dpo_")
    if needs_launch(cfg.dpo_accelerate_config, cfg.dpo_num_processes):
        launch(cfg.STEP, cfg, cfg.dpo_accelerate_config, cfg.dpo_num_processes)
        return load_result(cfg)
    return train_dpo.train_dpo(cfg, callbacks)


def load_result(cfg) -> dict:
    """After a launched run: the same result dict, read back from the step folder."""
    from fusechat_utils.io import read_json

    hist = read_json(cfg.step_dir / "log_history.json")
    return {"metrics": read_json(cfg.step_dir / "metrics.json"), "log": history_frame(hist)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one rank of a launched 05_sft / 06_dpo run")
    parser.add_argument("--step", choices=["05_sft", "06_dpo"], required=True)
    parser.add_argument("--config", required=True, help="JSON of the step config (launch_config.json)")
    ns = parser.parse_args(argv)
    cls, run = (SFTStepConfig, run_sft) if ns.step == "05_sft" else (DPOStepConfig, run_dpo)
    with open(ns.config) as fh:
        run(cls.from_params(json.load(fh), source=ns.config))


if __name__ == "__main__":
    main()
