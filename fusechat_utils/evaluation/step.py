"""Step 07: evaluate the base target, the SFT model and the DPO model; one tidy results table + every sample.

Toy profile: the toy benchmarks (math accuracy, code pass@1, general/Chinese exact match, reward-model win rate
against the base target), greedy, through transformers. Paper profiles: the paper's 14 benchmarks as FuseEval ran
them, one entry each in `registry.py` (prompt per target family, decoding, grader or judge), vLLM backend; any of
them also runs on the toy profile (`eval_limit`, `eval_max_tokens_cap` for CPU). Outputs in `<run_dir>/07_eval/`: results.csv
(model, stage, benchmark, metric, value, n, stderr; values in percent except judge scores), samples/<stage>/
<benchmark>.jsonl, eval_settings.json. Usage: `run(EvalConfig(run_dir="outputs/toy"))`.
Resumable: every (stage, benchmark) is committed under parts/ when done (`runners.evaluate_stage`); a rerun skips
them, under the values in parts/eval_params.json (a changed param is an error naming it, nothing deleted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from fusechat_utils.config import SeededStepConfig

# FuseEval's judge per judged benchmark (AlpacaEval: weighted_alpaca_eval_gpt4_turbo's model; AlignBench: the
# "gpt-4" its judge.py hard-codes).
FUSEEVAL_JUDGES = {"AlpacaEval-2 (LC %)": "gpt-4-1106-preview", "Arena-Hard (WR %)": "gpt-4-1106-preview",
                   "MT-Bench": "gpt-4-0125-preview", "AlignBench v1.1": "gpt-4"}
RESULT_COLUMNS = ["model", "stage", "benchmark", "metric", "value", "n", "stderr"]
STAGE_DIRS = {"sft": "05_sft/model", "dpo": "06_dpo/model"}
PARTS = "parts"
RESUME_FILE = "eval_params.json"
# What a committed (stage, benchmark) result depends on besides its model (parts/<stage>/model.json). Not here:
# eval_benchmarks and eval_models (adding one evaluates only it) and eval_judge_base_url (where the judge runs).
RESUME_KEYS = ("seed", "eval_data_files", "eval_toy_benchmarks_dir", "eval_reward_model", "eval_max_new_tokens",
               "eval_batch_size", "eval_limit", "eval_max_tokens_cap", "eval_prompt_family", "eval_code_timeout_s",
               "eval_backend", "eval_dtype", "eval_judge_models", "eval_judge_options", "eval_lcb_window")
RESUME_INPUTS = ("toy_benchmarks_hash", "reward_model_hash", "data_files_hash")


@dataclass
class EvalConfig(SeededStepConfig):
    STEP: ClassVar[str] = "07_eval"

    target_model: str = field(default="outputs/toy_world/models/target",
                              metadata={"help": "the base target (stage 'base')"})
    eval_models: dict = field(default_factory=dict, metadata={
        "help": "stage -> model path/id; empty: base target, <run_dir>/05_sft/model, <run_dir>/06_dpo/model"})
    eval_benchmarks: list[str] = field(default_factory=lambda: ["toy"], metadata={
        "help": "'toy' (all toy families) and/or paper benchmark names (evaluation/registry.py)"})
    eval_data_files: dict = field(default_factory=dict, metadata={
        "help": "paper benchmark name -> file in its released format (default: the real file in data/benchmarks)"})
    eval_toy_benchmarks_dir: str = field(default="outputs/toy_world/benchmarks",
                                         metadata={"help": "folder of toy <family>.jsonl files"})
    eval_reward_model: str = field(default="outputs/toy_world/models/reward",
                                   metadata={"help": "reward model judging the toy win rate against the base"})
    eval_max_new_tokens: int = field(default=64, metadata={"help": "toy benchmarks' generation budget"})
    eval_max_tokens_cap: int | None = field(default=None, metadata={
        "help": "cap on each paper benchmark's FuseEval max_tokens (None: FuseEval's; CPU rehearsals set it)"})
    eval_limit: int | None = field(default=None, metadata={"help": "first N items of each paper benchmark (None: all)"})
    eval_prompt_family: str = field(default="auto", metadata={
        "help": "prompt family: llama3, qwen25, gemma2 (FuseEval's), chat_template (the model's own template), or "
                "auto (config.json's model_type, checked by rendering the tokenizer's template; else chat_template)"})
    eval_lcb_window: list = field(default_factory=lambda: ["2024-06-30", "2024-11-30"], metadata={
        "help": "LiveCodeBench contest dates [start, end] (FuseEval: from 2024-06-30; end: its label's, 2408-2411)"})
    eval_batch_size: int = field(default=64, metadata={"help": "prompts per generation batch"})
    eval_code_timeout_s: float = field(default=10.0, metadata={"help": "seconds per program in the sandbox"})
    eval_backend: str = field(default="transformers", metadata={"help": "transformers (CPU/toy) or vllm (paper)"})
    eval_vllm_python: str = field(default=".venv-vllm/bin/python", metadata={
        "help": "python of the venv that has vllm (empty: this interpreter, as on a GPU node)"})
    eval_dtype: str = field(default="bfloat16", metadata={"help": "vLLM dtype (FuseEval: bfloat16)"})
    eval_judge_base_url: str = field(default="http://127.0.0.1:8000/v1",
                                     metadata={"help": "OpenAI-compatible judge endpoint (MT-Bench, Arena-Hard)"})
    eval_judge_models: dict = field(default_factory=lambda: dict(FUSEEVAL_JUDGES), metadata={
        "help": "benchmark -> judge model at that endpoint (FuseEval's per benchmark)"})
    eval_judge_concurrency: int = field(default=8, metadata={"help": "judge requests in flight at once"})
    eval_judge_max_retries: int = field(default=6, metadata={"help": "retries of a failed judge request (backoff)"})
    eval_judge_options: dict = field(default_factory=dict, metadata={
        "help": "benchmark -> options of its judged pipeline, e.g. AlpacaEval-2 (LC %): {glm: length_controlled_minimal}"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eval_backend not in ("transformers", "vllm"):
            raise ValueError(f"eval_backend must be 'transformers' or 'vllm', got {self.eval_backend!r}")
        from fusechat_utils.evaluation.registry import REGISTRY

        for name in [*self.eval_benchmarks, *self.eval_data_files, *self.eval_judge_options]:
            if name != "toy" and name not in REGISTRY:
                raise ValueError(f"eval_benchmarks: unknown benchmark {name!r}; known: toy, {', '.join(REGISTRY)}")


def resolve_models(cfg: EvalConfig) -> tuple[dict[str, str], list[str]]:
    """stage -> model; local stages not trained yet are skipped with a note."""
    if cfg.eval_models:
        return {str(k): str(v) for k, v in cfg.eval_models.items()}, []
    models, notes = {"base": cfg.target_model}, []
    for stage, rel in STAGE_DIRS.items():
        path = Path(cfg.run_dir) / rel
        if path.is_dir():
            models[stage] = str(path)
        else:
            notes.append(f"{stage}: {path} not found, skipped")
    return models, notes


def result_row(model: str, stage: str, benchmark: str, metric: str, value: float, n: int,
               stderr: float | None) -> dict:
    return dict(zip(RESULT_COLUMNS, [model, stage, benchmark, metric, value, n, stderr]))


def proportion_row(model: str, stage: str, benchmark: str, metric: str, hits: list[bool]) -> dict:
    """A proportion in percent with its binomial standard error."""
    n = len(hits)
    p = sum(hits) / n if n else float("nan")
    return result_row(model, stage, benchmark, metric, 100 * p, n, 100 * (p * (1 - p) / n) ** 0.5 if n else None)


def eval_settings(cfg: EvalConfig, models: dict[str, str]) -> dict:
    """What ran with what: backend, executor, judges, and per paper benchmark its registry entry with the
    decoding it ran with (the family of the first model evaluated)."""
    from fusechat_utils.evaluation.execution import executor_name
    from fusechat_utils.evaluation.registry import REGISTRY, detect, local_tokenizer, settings

    paper = [b for b in cfg.eval_benchmarks if b in REGISTRY]
    chosen = {stage: detect(m, cfg.eval_prompt_family, local_tokenizer(m)) for stage, m in models.items()} if paper \
        else {}
    family = next(iter(chosen.values()))[0] if chosen else None
    return {"backend": cfg.eval_backend, "executor": executor_name(), "prompt_family": family,
            "prompt_families": {stage: {"family": f, "why": why} for stage, (f, why) in chosen.items()},
            "max_tokens_cap": cfg.eval_max_tokens_cap, "limit": cfg.eval_limit,
            "judge": {"base_url": cfg.eval_judge_base_url, "models": cfg.eval_judge_models},
            "toy_decoding": {"do_sample": False, "max_new_tokens": cfg.eval_max_new_tokens},
            "benchmarks": {b: settings(REGISTRY[b], family) for b in paper}}


def resume_values(cfg: EvalConfig) -> dict:
    from fusechat_utils.io import hash_path

    def local_hash(path) -> str | None:
        return hash_path(path) if path and Path(path).exists() else None

    return {**{k: getattr(cfg, k) for k in RESUME_KEYS},
            "toy_benchmarks_hash": local_hash(cfg.eval_toy_benchmarks_dir),
            "reward_model_hash": local_hash(cfg.eval_reward_model),
            "data_files_hash": {k: local_hash(v) for k, v in sorted(cfg.eval_data_files.items())}}


def run(cfg: EvalConfig) -> pd.DataFrame:
    from fusechat_utils import shards
    from fusechat_utils.evaluation.results_import import apply_imports
    from fusechat_utils.evaluation.runners import evaluate_stage, toy_winrates
    from fusechat_utils.io import atomic_path, seed_everything, write_json

    seed_everything(cfg.seed)
    models, notes = resolve_models(cfg)
    cfg.step_dir.mkdir(parents=True, exist_ok=True)
    shards.resume_guard(cfg.step_dir / PARTS, resume_values(cfg), RESUME_FILE, inputs=RESUME_INPUTS,
                        what="committed results")
    rows, samples = [], {}
    for stage, model in models.items():
        stage_rows, samples[stage] = evaluate_stage(cfg, stage, model, notes)
        rows += stage_rows
    seed_everything(cfg.seed)
    rows += toy_winrates(cfg, models, samples)
    table = apply_imports(cfg.step_dir, pd.DataFrame(rows, columns=RESULT_COLUMNS))  # `fusechat import-results`
    with atomic_path(cfg.step_dir / "results.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_json(cfg.step_dir / "eval_settings.json", {**eval_settings(cfg, models), "models": models, "notes": notes,
                                                      "config": asdict(cfg)})
    return table
