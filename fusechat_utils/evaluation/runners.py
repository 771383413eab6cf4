"""Per-stage evaluation: generate greedily, score, record every sample, return result rows.

`evaluate_stage(cfg, stage, model)` runs each benchmark of `cfg.eval_benchmarks`; `toy_winrates` judges every
non-base stage against the base target's responses with the toy reward model.
Usage: `rows, samples = evaluate_stage(cfg, "sft", "outputs/toy/05_sft/model")`.
"""

from __future__ import annotations

from collections import defaultdict

from fusechat_utils.evaluation import humaneval, toy, winrate
from fusechat_utils.evaluation.adapters import BENCHMARKS, NotRunHere, run_paper_benchmark
from fusechat_utils.evaluation.generate import generate_chat
from fusechat_utils.evaluation.step import proportion_row, result_row
from fusechat_utils.io import write_jsonl


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


def evaluate_stage(cfg, stage: str, model: str, notes: list[str] | None = None):
    """(result rows, samples per benchmark); a benchmark that cannot run here is noted in `notes`, not fatal."""
    rows, samples = [], {}
    for bench in cfg.eval_benchmarks:
        if bench == "toy":
            got = run_toy(cfg, stage, model)
        elif bench.lower() == "humaneval":
            got = run_humaneval(cfg, stage, model)
        elif bench in BENCHMARKS:
            try:
                got = run_paper_benchmark(cfg, bench, stage, model)
            except NotRunHere as exc:
                (notes if notes is not None else []).append(f"{stage}/{bench}: {exc}")
                continue
        else:
            raise ValueError(f"eval_benchmarks: unknown benchmark {bench!r}; known: toy, humaneval, "
                             f"{', '.join(BENCHMARKS)}")
        rows += got[0]
        samples.update(got[1])
    for bench, rs in samples.items():
        write_jsonl(cfg.step_dir / "samples" / stage / f"{bench}.jsonl", rs)
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
