"""Paper benchmarks run from a local file in the benchmark's real format (`eval_data_files`: name -> path).

Generate greedily with the stage's model, then score: math answers, option letters and tests through
`formats.score`; MT-Bench and AlignBench (first turn) through the judge at `eval_judge_base_url`. LiveCodeBench
rows are kept to the 2408-2411 window. Arena-Hard, AlpacaEval 2 and LiveBench need their own tools (baseline answers,
the annotator pipeline, per-task scorers) and are noted, not run. Usage: `run_local(cfg, "AMC 23", "sft", model)`.
"""

from __future__ import annotations

from fusechat_utils.evaluation import formats, judge
from fusechat_utils.evaluation.adapters import NotRunHere
from fusechat_utils.evaluation.step import proportion_row, result_row
from fusechat_utils.evaluation.winrate import mean_stderr

JUDGED = ("MT-Bench", "AlignBench v1.1")
SCORED = ("GSM8K", "MATH", "AMC 23", "MMLU-Pro", "MMLU-redux", "GPQA-Diamond", "MBPP", "LiveCodeBench 2408-2411")


def _generate(cfg, model: str, prompts: list[str]) -> list[str]:
    from fusechat_utils.evaluation.runners import generate_for

    return generate_for(cfg, model, prompts)


def run_local(cfg, name: str, stage: str, model: str) -> tuple[list[dict], dict]:
    if name not in SCORED + JUDGED:
        raise NotRunHere(f"a local file is not enough for {name}: it runs through its own tool")
    items = formats.load_items(name, cfg.eval_data_files[name])
    if name == "LiveCodeBench 2408-2411":
        items = [it for it in items if formats.in_window(it)]
    responses = _generate(cfg, model, [it["prompt"] for it in items])
    if name in JUDGED:
        rows = judge.judge_single(judge.client_for(cfg), None, items, responses)
        scores = [r["score"] for r in rows if r["score"] is not None]
        mean, se = mean_stderr(scores)
        return [result_row(model, stage, name, "score_1_10", mean, len(scores), se)], {name: rows}
    hits = [formats.score(name, it, r, cfg.eval_code_timeout_s) for it, r in zip(items, responses, strict=True)]
    samples = [{"id": it["id"], "prompt": it["prompt"], "gold": it.get("gold"), "response": r, "correct": h}
               for it, r, h in zip(items, responses, hits)]
    metric = "pass@1" if name in ("MBPP", "LiveCodeBench 2408-2411") else "accuracy"
    return [proportion_row(model, stage, name, metric, hits)], {name: samples}
