"""Step 05_sft: TRL SFTTrainer on 04's sft set (or `sft_data`), in-process or via accelerate launch.

Usage (what notebooks/05_sft.ipynb does):
    cfg = SFTStepConfig.from_params(globals()); result = run_sft(cfg)    # -> <run_dir>/05_sft/model/

Beyond the kit's params: `sft_trainer_args` passes any other trl.SFTConfig option, and `sft_peft` (lora, qlora)
trains a LoRA adapter that is merged into the model the step saves (train_options.py).

Data: `sft_data` = '' trains on this run's 04_pairs/sft.parquet; a .parquet / .jsonl / .json file or a hub
dataset id in the released FuseChat-3.0 schema (or TRL's conversational formats) trains on that instead
(train_data.py). metrics.json records the source and its hash.

SFT data route: the `conversations` become TRL's conversational prompt/completion format (prompt = all turns up
to the last assistant turn, completion = that turn). TRL then trains on completion tokens only for ANY chat
template; `assistant_only_loss=True` would need {% generation %} markers that the paper's hub templates
(Llama-3.1, Qwen2.5, Gemma-2) lack. FuseChat's SFT rows are single-turn, so nothing is lost.

Tracking: `sft_trainer_args: {report_to: trackio}` logs the curves with trackio into `05_sft/trackio/`
(train_options.tracking); one progress line per logging step is printed either way (`fusechat run` shows it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

from fusechat_utils import train_data
from fusechat_utils import train_options as options
from fusechat_utils.config import SeededStepConfig
from fusechat_utils.io import seed_everything
from fusechat_utils.train_common import DATA_HELP, check_batches, check_options, finish, run_step, trainer_args
from fusechat_utils.train_launch import SampleLog, checkpoint_step, progress_callback, resume_point


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


def sft_dataset(source):
    """The SFT rows as an HF dataset of prompt/completion message lists; `source`: a train_data.Source or a file."""
    from datasets import Dataset

    if not isinstance(source, train_data.Source):
        source = train_data.Source("file", str(source))
    return Dataset.from_list(train_data.sft_rows(source))


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
    return run_step(cfg, "sft_", train_sft, callbacks)
