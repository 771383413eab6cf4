"""Per-stage evaluation: generate greedily, score, record every sample, return result rows.

`evaluate_stage(cfg, stage, model)` runs each benchmark of `cfg.eval_benchmarks`; `toy_winrates` judges every
non-base stage against the base target's responses with the toy reward model.
Usage: `rows, samples = evaluate_stage(cfg, "sft", "outputs/toy/05_sft/model")`.

Resume: each (stage, benchmark) is committed when done: its samples/<stage>/<name>.jsonl files first, then
`parts/<stage>/<benchmark>.json` (its result rows and sample names), each written tmp + os.replace. A rerun reads
committed parts back instead of evaluating again, as long as `parts/<stage>/model.json` still names the same model
(path and content hash; a retrained model moves the stage's stale parts aside). Every run, interrupted or not,
builds its rows from the part files, so both give the same results.csv.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from fusechat_utils import shards
from fusechat_utils.evaluation import humaneval, toy, winrate
from fusechat_utils.evaluation.adapters import BENCHMARKS, NotRunHere, run_paper_benchmark
from fusechat_utils.evaluation.generate import generate_chat
from fusechat_utils.evaluation.step import PARTS, proportion_row, result_row
from fusechat_utils.io import hash_obj, hash_path, read_json, read_jsonl, seed_everything, write_json, write_jsonl


def model_hash(model: str) -> str | None:
    """Content hash of a local model folder (None for a hub id), without training_args.bin: that pickle records
    the trainer's paths, not the model, and would make the same weights trained in two run folders differ."""
    path = Path(model)
    if not path.exists():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != "training_args.bin")
    return hash_obj({p.relative_to(path).as_posix(): hash_path(p) for p in files})


def generate_for(cfg, model: str, prompts: list[str]) -> list[str]:
    """Greedy responses with the configured backend."""
    if cfg.eval_backend == "vllm":
        from fusechat_utils.evaluation.adapters import generate_vllm

        return generate_vllm(model, prompts, cfg.eval_max_new_tokens)
    return generate_chat(model, prompts, cfg.eval_max_new_tokens, cfg.eval_batch_size)


def run_toy(cfg, stage: str, model: str) -> tuple[list[dict], dict[str, list[dict]]]:
    items = toy.load_toy_benchmarks(cfg.eval_toy_benchmarks_dir)
    responses = generate_for(cfg, model, [it["prompt"] for it in items])
    scored = toy.score_toy(items, responses, cfg.eval_code_timeout_s)
    by_bench: dict[str, list[dict]] = defaultdict(list)
    for row in scored:
        by_bench[row["benchmark"]].append(row)
    rows = [proportion_row(model, stage, bench, toy.METRIC[bench.removeprefix("toy_")],
                           [r["correct"] for r in rs]) for bench, rs in sorted(by_bench.items())]
    return rows, dict(by_bench)


def run_humaneval(cfg, stage: str, model: str) -> tuple[list[dict], dict[str, list[dict]]]:
    problems = humaneval.load_problems(cfg.eval_humaneval_limit)
    responses = generate_for(cfg, model, [humaneval.build_prompt(p) for p in problems])
    scored = humaneval.score_humaneval(problems, responses, cfg.eval_code_timeout_s)
    return [proportion_row(model, stage, "HumanEval", "pass@1", [r["passed"] for r in scored])], {"HumanEval": scored}


def run_benchmark(cfg, bench: str, stage: str, model: str):
    """(result rows, samples per benchmark name) of one entry of eval_benchmarks; NotRunHere passes through."""
    if bench == "toy":
        return run_toy(cfg, stage, model)
    if bench.lower() == "humaneval":
        return run_humaneval(cfg, stage, model)
    if bench in BENCHMARKS:
        return run_paper_benchmark(cfg, bench, stage, model)
    raise ValueError(f"eval_benchmarks: unknown benchmark {bench!r}; known: toy, humaneval, {', '.join(BENCHMARKS)}")


def stage_parts(cfg, stage: str, model: str) -> Path:
    """parts/<stage>/, whose committed parts belong to this model (path + content); stale ones are moved aside."""
    folder = Path(cfg.step_dir) / PARTS / shards._safe(stage)
    values = {"stage": stage, "model": model, "model_hash": model_hash(model)}
    return shards.resume_guard(folder, values, "model.json", inputs=("model_hash",), what="committed results")


def commit_part(cfg, stage: str, bench: str, part: Path, got: tuple[list[dict], dict[str, list[dict]]]) -> None:
    rows, samples = got
    for name, rs in samples.items():
        write_jsonl(Path(cfg.step_dir) / "samples" / stage / f"{name}.jsonl", rs)
    write_json(part, {"stage": stage, "benchmark": bench, "rows": rows, "samples": list(samples)})


def read_part(cfg, stage: str, part: Path) -> tuple[list[dict], dict[str, list[dict]]]:
    done = read_json(part)
    samples = {name: read_jsonl(Path(cfg.step_dir) / "samples" / stage / f"{name}.jsonl") for name in done["samples"]}
    return done["rows"], samples


def evaluate_stage(cfg, stage: str, model: str, notes: list[str] | None = None):
    """(result rows, samples per benchmark); a benchmark that cannot run here is noted in `notes`, not fatal.

    Each benchmark is committed as a part when done; committed parts are read back, not evaluated again.
    """
    rows, samples = [], {}
    folder = stage_parts(cfg, stage, model)
    for bench in cfg.eval_benchmarks:
        part = folder / f"{shards._safe(bench)}.json"
        if not part.exists():
            seed_everything(cfg.seed)  # each part starts from the same state, whether resumed or not
            try:
                got = run_benchmark(cfg, bench, stage, model)
            except NotRunHere as exc:
                (notes if notes is not None else []).append(f"{stage}/{bench}: {exc}")
                continue
            commit_part(cfg, stage, bench, part, got)
        got = read_part(cfg, stage, part)
        rows += got[0]
        samples.update(got[1])
    return rows, samples


def toy_winrates(cfg, models: dict[str, str], samples: dict[str, dict]) -> list[dict]:
    """Reward-model win rate of each stage against the base on the toy general prompts (ties count half)."""
    if "toy" not in cfg.eval_benchmarks or "base" not in samples or "toy_general" not in samples["base"]:
        return []
    base = samples["base"]["toy_general"]
    prompts = [r["prompt"] for r in base]
    base_scores = winrate.reward_scores(cfg.eval_reward_model, prompts, [r["response"] for r in base])
    rows = []
    for stage, by_bench in samples.items():
        if stage == "base":
            continue
        ours = [r["response"] for r in by_bench["toy_general"]]
        wins = winrate.pairwise_wins(winrate.reward_scores(cfg.eval_reward_model, prompts, ours), base_scores)
        mean, se = winrate.mean_stderr(wins)
        rows.append(result_row(models[stage], stage, "toy_if_winrate", "win_rate_vs_base", 100 * mean, len(wins),
                               100 * se))
    return rows
