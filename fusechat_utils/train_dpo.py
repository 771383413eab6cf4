"""Step 06_dpo: TRL DPOTrainer from the SFT model, frozen SFT reference, best-of-last-two checkpoint selection.

Usage (what notebooks/06_dpo.ipynb does):
    cfg = DPOStepConfig.from_params(globals()); result = run_dpo(cfg)    # -> <run_dir>/06_dpo/model/
`select_checkpoint(trainer, eval_set)` works on any DPOTrainer whose output_dir holds checkpoints.

Beyond the kit's params: `dpo_trainer_args` passes any other trl.DPOConfig option, `dpo_peft` (lora, qlora) a
LoRA adapter merged into the saved model, and `dpo_data` another preference set (see train_sft.py's docstring).

Paper (recipe §3): save every 100 steps, keep the better of the last two checkpoints. The paper does not say on
what; here a held-out slice of the preference pairs (`dpo_eval_fraction`) judges them: higher reward accuracy,
then lower DPO loss, then the later checkpoint. With no held-out pairs the last checkpoint is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from fusechat_utils import train_data
from fusechat_utils import train_options as options
from fusechat_utils.config import SeededStepConfig, invalid
from fusechat_utils.io import seed_everything, write_json
from fusechat_utils.train_common import DATA_HELP, check_batches, check_options, finish, run_step, trainer_args
from fusechat_utils.train_launch import checkpoint_step, last_checkpoint, progress_callback, resume_point


@dataclass
class DPOStepConfig(SeededStepConfig):
    STEP: ClassVar[str] = "06_dpo"
    target_model: str = field(default="outputs/toy_world/models/target", metadata={"help": "the base target: recorded, and where DPO starts when dpo_init is base"})
    dpo_data: str = field(default="", metadata={"help": DATA_HELP.format(name="dpo")})
    dpo_init: str = field(default="sft", metadata={
        "help": "sft: DPO starts from 05's model, its reference too (paper); base: from target_model, no SFT"})
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
        if self.dpo_init not in ("sft", "base"):
            raise invalid(f"key 'dpo_init' must be 'sft' or 'base', got {self.dpo_init!r}", "dpo_init")
        if self.dpo_eval_fraction >= 1:
            raise invalid(f"key 'dpo_eval_fraction' must be < 1 (pairs must remain to train on), got "
                          f"{self.dpo_eval_fraction}", "dpo_eval_fraction")

    def check_machine(self) -> None:
        train_data.check_exists(self.dpo_data, "dpo_data")
        options.check_machine(self, "dpo_")


PLOT_KEYS = ["loss", "rewards/margins", "rewards/accuracies", "eval_loss", "eval_rewards/accuracies"]


def dpo_splits(source, eval_fraction: float, seed: int):
    """The DPO rows -> (train, held-out) HF datasets of prompt/chosen/rejected message lists; `source`: a
    train_data.Source or a file."""
    from datasets import Dataset

    if not isinstance(source, train_data.Source):
        source = train_data.Source("file", str(source))
    data = Dataset.from_list(train_data.dpo_rows(source)).shuffle(seed=seed)
    n_eval = int(round(eval_fraction * len(data))) if eval_fraction > 0 else 0
    if n_eval >= len(data):
        raise train_data.DataError(f"{source.path}: dpo_eval_fraction {eval_fraction} leaves no training pairs of "
                                   f"{len(data)}")
    return data.select(range(n_eval, len(data))), (data.select(range(n_eval)) if n_eval else None)


def checkpoints(folder: str) -> list[Path]:
    return sorted(Path(folder).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))


def select_checkpoint(trainer, eval_set) -> dict:
    """Load each of the last two checkpoints, evaluate on the held-out pairs, leave the better one loaded."""
    cands = checkpoints(trainer.args.output_dir)[-2:]
    if not cands:
        return {"chosen": None, "why": "no checkpoint saved", "candidates": {}}
    if eval_set is None or len(cands) == 1:
        trainer._load_from_checkpoint(str(cands[-1]))
        return {"chosen": cands[-1].name, "why": "only candidate / no held-out pairs", "candidates": {}}
    scores = {}
    for ckpt in cands:
        trainer._load_from_checkpoint(str(ckpt))
        ev = trainer.evaluate(eval_dataset=eval_set)
        scores[ckpt.name] = {"accuracy": ev.get("eval_rewards/accuracies"), "loss": ev.get("eval_loss")}
    # max over (accuracy, -loss, step): the later checkpoint wins exact ties
    best = max(cands, key=lambda c: (scores[c.name]["accuracy"], -scores[c.name]["loss"], int(c.name.split("-")[-1])))
    a, b = (scores[c.name] for c in cands)
    why = ("higher held-out reward accuracy" if a["accuracy"] != b["accuracy"]
           else "equal accuracy, lower held-out loss" if a["loss"] != b["loss"] else "tie, later checkpoint")
    trainer._load_from_checkpoint(str(best))
    return {"chosen": best.name, "why": why, "candidates": scores}


def ensure_final_checkpoint(trainer) -> None:
    """Save the last step as a checkpoint when save_steps does not divide it, so it is a candidate."""
    last = last_checkpoint(trainer.args.output_dir)
    if last is None or int(last.split("-")[-1]) != trainer.state.global_step:
        trainer._save_checkpoint(trainer.model, trial=None)


def train_dpo(cfg: DPOStepConfig, callbacks=None) -> dict:
    from trl import DPOConfig, DPOTrainer

    from fusechat_utils.models import load_causal_lm, load_tokenizer

    started = time.time()
    seed_everything(cfg.seed)
    # the start and the frozen reference: the SFT model (paper), or the base target (the no-SFT ablation)
    sft_dir = str(cfg.step_dir.parent / "05_sft" / "model") if cfg.dpo_init == "sft" else cfg.target_model
    source = train_data.resolve(cfg.dpo_data, cfg.run_dir, "dpo")
    train_set, eval_set = dpo_splits(source, cfg.dpo_eval_fraction, cfg.seed)
    tok = load_tokenizer(sft_dir)
    # args before the models: under ZeRO-3 the config must exist at load time for weights to load partitioned
    args = DPOConfig(**trainer_args(cfg, "dpo_", beta=cfg.dpo_beta, loss_type=cfg.dpo_loss_type,
                                    per_device_eval_batch_size=cfg.dpo_per_device_train_batch_size))
    peft_config = options.lora_config(cfg, "dpo_")
    # explicit frozen reference: with ref_model=None TRL reloads the policy's original path (stack_notes §4). With
    # LoRA none is loaded: TRL 1.16 computes the reference with the adapter disabled, i.e. the SFT model itself.
    ref = None if peft_config else load_causal_lm(sft_dir).eval().requires_grad_(False)
    trainer = DPOTrainer(model=options.load_policy(sft_dir, cfg, "dpo_"), ref_model=ref, args=args,
                         train_dataset=train_set, eval_dataset=eval_set, processing_class=tok,
                         callbacks=[*(callbacks or []), progress_callback()], peft_config=peft_config)
    resume = resume_point(args.output_dir)
    trainer.train(resume_from_checkpoint=resume)
    ensure_final_checkpoint(trainer)
    choice = select_checkpoint(trainer, eval_set)  # with LoRA: loads the checkpoint's adapter
    options.save_trained(trainer, tok, cfg.step_dir, base=sft_dir, peft=cfg.dpo_peft)
    if trainer.is_world_process_zero():
        write_json(cfg.step_dir / "checkpoint_choice.json", choice)
    extra = {"pairs_train": len(train_set), "pairs_eval": len(eval_set) if eval_set else 0,
             "checkpoint_choice": choice, "reference": sft_dir, "target_model": cfg.target_model,
             "peft": cfg.dpo_peft, "data": source.describe(cfg.run_dir)}
    return finish(cfg, trainer, started, PLOT_KEYS, extra, checkpoint_step(resume) or 0)


def run_dpo(cfg: DPOStepConfig, callbacks=None) -> dict:
    """Step 06: DPO from 05's model on 04's dpo.parquet (or `dpo_data`), reference = that SFT model; keeps the
    better checkpoint."""
    return run_step(cfg, "dpo_", train_dpo, callbacks)
