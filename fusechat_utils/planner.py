"""Plan a paper-scale run before renting GPUs: the work each step does and the GPU-hours and wall time it takes.

Usage:
    fusechat plan --profile llama3.1-8b --gpus 8xH100 [--nodes 4]
    plan = make_plan(load_profile("llama3.1-8b"), gpus="8xH100", nodes=1); print(render(plan))

Counts come from the profile: prompts per dataset (`prompts_max_per_dataset`, the pool 01 hands to sampling) x the
sources of the dataset's category x `sample_n_<category>` = responses generated (02); + the kept
OpenMathInstruct-2 references = responses scored (03); SFT rows and DPO pairs from `pairs_max_per_dataset` split as
04 splits them (pairs.cap_targets: the paper's Selected / SFT / DPO for the paper profiles). Tokens are counts x the
mean lengths below; GPU-hours are tokens / (tokens/s per GPU) / 3600; wall time spreads a stage's GPU-hours over
every GPU (sampling and scoring as shards, `fusechat run --shard i/N`; training data-parallel over all nodes).

ASSUMPTIONS is the one table of every number that is not a count: each has a value, a unit, where it comes from and
how it was derived. None was measured on a GPU here (no GPU was at hand); the one measured figure is the sandbox's
CPU time per program. Not planned: model downloads and loads, 01's reading of the datasets, 04, and 07 (its judges
are API calls; its generation is ~3 x 35k benchmark items, against ~3 M samples in 02).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fusechat_utils.errors import UserError


@dataclass(frozen=True)
class Assumption:
    value: float
    unit: str
    source: str  # title and URL (or the kit's file) the value comes from
    derivation: str  # how the value follows from the source


TORCHTITAN = ("torchtitan, benchmarks/llama3_h100_202412_torchtitan.md (Llama 3.1 8B, FSDP, bf16, H100), "
              "https://github.com/pytorch/torchtitan/blob/31a17bfdb70bab6f62a13d21816a5339b911d6e3/benchmarks/"
              "llama3_h100_202412_torchtitan.md")
KAPLAN = ("Kaplan et al., Scaling Laws for Neural Language Models, arXiv 2001.08361, https://arxiv.org/abs/2001.08361 "
          "(forward ~ 2N FLOPs a token, training ~ 6N)")
ALPACA_EVAL = ("AlpacaEval 2 leaderboard, avg_length column, https://github.com/tatsu-lab/alpaca_eval/blob/"
               "01f3cb2de42f7cc814d838a8946563ab9af1725c/src/alpaca_eval/leaderboards/data_AlpacaEval_2/"
               "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")


def _card(model_id: str, params: str) -> str:
    return f"model card of {model_id} ({params}), https://huggingface.co/{model_id}"


ASSUMPTIONS: dict[str, Assumption] = {
    "chars_per_token": Assumption(
        4.0, "characters / token",
        "OpenAI Help Center, What are tokens and how to count them?, "
        "https://help.openai.com/en/articles/4936856-what-are-tokens-and-how-to-count-them",
        "'1 token ~ 4 chars in English'; every characters -> tokens conversion here"),
    "response_tokens": Assumption(
        500, "tokens / response",
        f"{ALPACA_EVAL}; FuseChat-3.0-DPO-Data, train.json 321 MB, "
        "https://huggingface.co/datasets/FuseAI/FuseChat-3.0-DPO-Data/tree/main",
        "two of the source families on AlpacaEval 2: Meta-Llama-3.1-70B-Instruct 2,044 chars, Qwen2-72B-Instruct "
        "1,626; mean 1,835 chars / 4 = 459, rounded up; one mean for every source and category. Cross-check: the "
        "released DPO set holds ~5,000 bytes a pair (321 MB / 64,128-64,245 pairs: prompt + chosen + rejected + "
        "JSON keys), <= 2,500 a response"),
    "prompt_tokens": Assumption(
        150, "tokens / prompt",
        "FuseChat-3.0-SFT-Data, train.json 236 MB (the paper's 94,539 SFT rows), "
        "https://huggingface.co/datasets/FuseAI/FuseChat-3.0-SFT-Data/tree/main",
        "2,496 bytes a row (prompt + selected response + JSON keys) less a 1,835-char response leaves <= 660 bytes "
        "for the prompt: <= 165 tokens"),
    "gen_tokens_per_s_gpu_70b": Assumption(
        750, "output tokens / s / GPU",
        "TensorRT-LLM performance table (v0.6.1), docs/source/performance.md, "
        "https://github.com/NVIDIA/TensorRT-LLM/blob/138f96d45f90b9667426f7c47297d8c06bafac73/docs/source/"
        "performance.md",
        "LLaMA 70B, FP8, TP 4, batch 480, 128 in / 2048 out: 1,486 output tokens/s per H100; halved for bf16 in "
        "vLLM (FP8 halves the weight and KV-cache bytes each decode step reads) and rounded"),
    "gen_reference_params_b": Assumption(
        70, "billion parameters",
        KAPLAN, "the model size gen_tokens_per_s_gpu_70b holds for; another source's rate is scaled by 70 / its size "
        "(decode costs 2N FLOPs and reads all N weights a step)"),
    "score_tokens_per_s_gpu": Assumption(
        8500, "prompt + response tokens / s / GPU",
        f"{TORCHTITAN}; {KAPLAN}",
        "ArmoRM is a Llama-3-8B: torchtitan trains a Llama 3.1 8B at 5,762 tokens/s/GPU (Table 1, >= 6N FLOPs a "
        "token); a forward alone is 2N: x 3 = 17,300; halved for right padding to each batch's longest row "
        "(score_batch_size 16) and eager transformers"),
    "code_cpu_s_per_program": Assumption(
        0.15, "CPU seconds / program",
        "this kit, README 'Graders checked on whole real files' (benchmarks/eval_oracles.py, measured on 2 cores)",
        "HumanEval: 164 items x 2 answers (oracle, wrong) in 11.9 s on 2 workers in the kit's sandbox = 0.145 "
        "CPU-s a program; 03 runs score_code_workers programs at once on each node"),
    "train_tokens_per_s_gpu_8b": Assumption(
        3000, "trained tokens / s / GPU",
        f"{TORCHTITAN}; {KAPLAN}",
        "5,762 tokens/s/GPU (FSDP2, selective activation checkpointing) x 3/4 for full gradient checkpointing "
        "(8N instead of ~6N FLOPs a token) x 0.7 for DeepSpeed ZeRO-3's parameter gathers and the HF Trainer's "
        "overheads (assumed) = 3,025, rounded"),
    "train_reference_params_b": Assumption(
        8.03, "billion parameters",
        _card("meta-llama/Llama-3.1-8B-Instruct", "8.03B"),
        "the target size train_tokens_per_s_gpu_8b holds for; another target's rate is scaled by 8.03 / its size "
        "(6N FLOPs a trained token); optimistic for the 1B and 3B targets, whose small matrices use an H100 less well"),
    "dpo_cost_factor": Assumption(
        1.25, "x SFT cost a token",
        "TRL DPOTrainer docs (precompute_ref_log_probs defaults to False), "
        "https://huggingface.co/docs/trl/dpo_trainer",
        "the frozen reference's forward (2N FLOPs a token) on top of the policy's forward, recompute and backward "
        "(8N), each batch"),
    "multi_node_efficiency": Assumption(
        0.97, "fraction of one node's tokens/s/GPU",
        TORCHTITAN,
        "Table 3 vs Table 1: 5,605 tokens/s/GPU on 128 H100 (16 nodes, 400 Gb/s RDMA a GPU) vs 5,762 on 8; "
        "applied to training when nodes > 1"),
}

# Model sizes (billion parameters), from the model cards: the throughput scaling above needs them.
MODEL_PARAMS_B: dict[str, Assumption] = {
    model: Assumption(size, "billion parameters", _card(model, f"{size}B"), "the card's parameter count")
    for model, size in {
        "google/gemma-2-27b-it": 27.2, "mistralai/Mistral-Large-Instruct-2407": 123.0,
        "Qwen/Qwen2.5-72B-Instruct": 72.7, "meta-llama/Llama-3.1-70B-Instruct": 70.6,
        "Qwen/Qwen2.5-Math-72B-Instruct": 72.7,
        "meta-llama/Llama-3.1-8B-Instruct": 8.03, "Qwen/Qwen2.5-7B-Instruct": 7.61, "google/gemma-2-9b-it": 9.24,
        "meta-llama/Llama-3.2-3B-Instruct": 3.21, "meta-llama/Llama-3.2-1B-Instruct": 1.24,
    }.items()
}

GPU_TYPES = ("H100",)  # the throughputs above are H100 figures


def value(key: str) -> float:
    return ASSUMPTIONS[key].value


def params_b(model: str) -> float:
    """A model's size: the table, else the size its name states ('...-27b-it' -> 27), else an error naming it."""
    if model in MODEL_PARAMS_B:
        return MODEL_PARAMS_B[model].value
    found = re.search(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", model.split("/")[-1])
    if not found:
        raise UserError(f"plan: the size of {model!r} is unknown (the planner plans hub models; the toy profile's "
                        "are local): add it to planner.MODEL_PARAMS_B with its source")
    return float(found.group(1))


def parse_gpus(spec: str) -> tuple[int, str]:
    """'8xH100' -> (8, 'H100'): GPUs per node and their type."""
    found = re.fullmatch(r"(\d+)\s*[xX]\s*([A-Za-z0-9]+)", spec.strip())
    if not found or int(found.group(1)) < 1:
        raise UserError(f"--gpus {spec!r}: expected GPUs per node x type, e.g. 8xH100")
    gpu = found.group(2).upper()
    if gpu not in GPU_TYPES:
        raise UserError(f"--gpus {spec!r}: no throughput assumptions for {gpu} (have: {', '.join(GPU_TYPES)}); "
                        "add them to planner.ASSUMPTIONS with their sources")
    return int(found.group(1)), gpu


def dataset_counts(params: dict[str, Any]) -> list[dict]:
    """Per dataset: prompts sampled, responses generated and scored, SFT rows and DPO pairs 04 keeps."""
    from fusechat_utils.pairs import PairsConfig, Rules, cap_targets
    from fusechat_utils.prompt_sources import DATASETS

    rules = Rules(**PairsConfig(**{k: v for k, v in params.items() if k in PairsConfig.__dataclass_fields__}).rules())
    rows = []
    for name in params["prompts_datasets"]:
        if name not in params["prompts_max_per_dataset"]:
            raise UserError(f"plan: key 'prompts_max_per_dataset' has no count for {name}: the planner counts the "
                            "prompts a profile caps (the paper profiles cap every dataset)")
        category = DATASETS[name].category
        prompts = int(params["prompts_max_per_dataset"][name])
        sources = list(params[f"sample_{category}_sources"])
        per_source = int(params[f"sample_n_{category}"])
        references = prompts if category == "math" and params["sample_keep_math_reference"] else 0
        # Selected: 04's cap after pairing; without one (the caps-before-filters reading) at most the pool
        selected = int(params["pairs_max_per_dataset"].get(name, prompts))
        # math/code without pairs_dpo_share: 04's pairing decides the split; planned as the general split
        sft, dpo = cap_targets(category, selected, rules, name) or cap_targets("general", selected, rules, name)
        rows.append({"dataset": name, "category": category, "prompts": prompts, "sources": len(sources),
                     "samples": per_source, "generated": prompts * len(sources) * per_source,
                     "scored": prompts * len(sources) * per_source + references, "selected": selected,
                     "sft": sft, "dpo": dpo, "source_names": sources})
    return rows


def source_loads(params: dict[str, Any], counts: list[dict]) -> list[dict]:
    """Per source model: responses it generates and its GPU-hours at its size-scaled rate."""
    models = {s["name"]: s["model"] for s in params["sample_sources"]}
    loads: dict[str, int] = {}
    for row in counts:
        for name in row["source_names"]:
            loads[name] = loads.get(name, 0) + row["prompts"] * row["samples"]
    out = []
    for name, responses in loads.items():
        rate = value("gen_tokens_per_s_gpu_70b") * value("gen_reference_params_b") / params_b(models[name])
        tokens = responses * value("response_tokens")
        out.append({"source": name, "model": models[name], "responses": responses, "tokens": tokens,
                    "tokens_per_s_gpu": rate, "gpu_hours": tokens / rate / 3600})
    return out


def make_plan(params: dict[str, Any], gpus: str = "8xH100", nodes: int = 1) -> dict:
    """Counts, tokens and the per-stage GPU-hours and wall hours of a profile on `nodes` nodes of `gpus`."""
    if nodes < 1:
        raise UserError(f"--nodes {nodes}: must be at least 1")
    per_node, gpu = parse_gpus(gpus)
    n_gpus = per_node * nodes
    counts = dataset_counts(params)
    sources = source_loads(params, counts)
    seq = value("prompt_tokens") + value("response_tokens")  # one trained or scored sequence
    scored = sum(r["scored"] for r in counts)
    code = sum(r["generated"] for r in counts if r["category"] == "code")
    sft_rows, dpo_pairs = sum(r["sft"] for r in counts), sum(r["dpo"] for r in counts)
    train_rate = value("train_tokens_per_s_gpu_8b") * value("train_reference_params_b") / params_b(
        params["target_model"]) * (value("multi_node_efficiency") if nodes > 1 else 1.0)
    stages = [{"stage": f"02 sampling: {s['source']}", "work": s["tokens"], "unit": "tokens generated",
               "tokens_per_s_gpu": s["tokens_per_s_gpu"], "gpu_hours": s["gpu_hours"], "gpus": n_gpus}
              for s in sources]
    score_tokens = scored * seq
    stages.append({"stage": f"03 scoring: {params['score_reward_model'].split('/')[-1]}", "work": score_tokens,
                   "unit": "tokens scored", "tokens_per_s_gpu": value("score_tokens_per_s_gpu"),
                   "gpu_hours": score_tokens / value("score_tokens_per_s_gpu") / 3600, "gpus": n_gpus})
    sft_tokens = sft_rows * seq * params["sft_num_train_epochs"]
    dpo_tokens = dpo_pairs * 2 * seq * params["dpo_num_train_epochs"]  # chosen and rejected, each with the prompt
    stages.append({"stage": "05 SFT", "work": sft_tokens, "unit": "tokens trained", "tokens_per_s_gpu": train_rate,
                   "gpu_hours": sft_tokens / train_rate / 3600, "gpus": n_gpus})
    dpo_rate = train_rate / value("dpo_cost_factor")
    stages.append({"stage": "06 DPO", "work": dpo_tokens, "unit": "tokens trained", "tokens_per_s_gpu": dpo_rate,
                   "gpu_hours": dpo_tokens / dpo_rate / 3600, "gpus": n_gpus})
    for s in stages:
        s["wall_hours"] = s["gpu_hours"] / s["gpus"]
    cpu_hours = code * value("code_cpu_s_per_program") / 3600
    cpu = {"stage": "03 code tests (CPU, sandbox)", "programs": code, "cpu_hours": cpu_hours,
           "wall_hours": cpu_hours / (params["score_code_workers"] * nodes)}
    totals = {"prompts": sum(r["prompts"] for r in counts), "generated": sum(r["generated"] for r in counts),
              "scored": scored, "sft": sft_rows, "dpo": dpo_pairs,
              "gpu_hours": sum(s["gpu_hours"] for s in stages), "wall_hours": sum(s["wall_hours"] for s in stages)}
    return {"gpus": gpus, "gpu": gpu, "nodes": nodes, "n_gpus": n_gpus, "target": params["target_model"],
            "counts": counts, "sources": sources, "stages": stages, "cpu": cpu, "totals": totals}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _h(hours: float) -> str:
    return f"{hours:,.1f}"


def _tokens(x: float) -> str:
    return f"{x / 1e9:.2f} B" if x >= 1e9 else f"{x / 1e6:.1f} M"


def render(plan: dict) -> str:
    """The plan as markdown tables: counts per dataset, GPU time per stage, where the time goes, the assumptions."""
    t = plan["totals"]
    counts = _table(
        ["dataset", "category", "prompts", "sources x samples", "generated", "scored", "Selected", "SFT", "DPO"],
        [[r["dataset"], r["category"], _n(r["prompts"]), f"{r['sources']} x {r['samples']}", _n(r["generated"]),
          _n(r["scored"]), _n(r["selected"]), _n(r["sft"]), _n(r["dpo"])] for r in plan["counts"]]
        + [["total", "", _n(t["prompts"]), "", _n(t["generated"]), _n(t["scored"]), _n(t["sft"] + t["dpo"]),
            _n(t["sft"]), _n(t["dpo"])]])
    stages = _table(
        ["stage", "work", "tokens/s per GPU", "GPU-hours", f"wall hours on {plan['n_gpus']} GPUs", "share"],
        [[s["stage"], f"{_tokens(s['work'])} {s['unit']}", _n(s["tokens_per_s_gpu"]), _h(s["gpu_hours"]),
          _h(s["wall_hours"]), f"{100 * s['gpu_hours'] / t['gpu_hours']:.0f} %"] for s in plan["stages"]]
        + [["total (GPU)", "", "", _h(t["gpu_hours"]), _h(t["wall_hours"]), "100 %"]])
    cpu = plan["cpu"]
    lines = [f"Plan: {plan['target']} on {plan['nodes']} node(s) x {plan['gpus']} ({plan['n_gpus']} GPUs)", "",
             counts, "", stages, "",
             f"{cpu['stage']}: {_n(cpu['programs'])} programs, {_h(cpu['cpu_hours'])} CPU-hours, "
             f"{_h(cpu['wall_hours'])} h wall at score_code_workers per node (beside the GPU work)", "",
             where_the_time_goes(plan), "", assumptions_table()]
    return "\n".join(lines)


def where_the_time_goes(plan: dict) -> str:
    t, stages = plan["totals"], plan["stages"]
    by_step: dict[str, float] = {}
    for s in stages:
        by_step[s["stage"][:2]] = by_step.get(s["stage"][:2], 0.0) + s["gpu_hours"]
    top = max(stages, key=lambda s: s["gpu_hours"])
    shares = ", ".join(f"{step} {100 * h / t['gpu_hours']:.0f} %" for step, h in by_step.items())
    days = t["wall_hours"] / 24
    return (f"Where the time goes: {_h(t['gpu_hours'])} GPU-hours, {_h(t['wall_hours'])} h wall ({days:.1f} days) "
            f"on {plan['n_gpus']} GPUs; by step: {shares}. The largest single item is {top['stage']} "
            f"({100 * top['gpu_hours'] / t['gpu_hours']:.0f} %).")


def assumptions_table() -> str:
    rows = [[key, f"{a.value:g} {a.unit}", a.derivation, a.source] for key, a in ASSUMPTIONS.items()]
    sizes = "; ".join(f"{m} {a.value:g}B" for m, a in MODEL_PARAMS_B.items())
    return ("Assumptions (fusechat_utils/planner.py ASSUMPTIONS; none measured on a GPU):\n\n"
            + _table(["key", "value", "how", "source"], rows)
            + f"\n\nModel sizes (their model cards, https://huggingface.co/<id>): {sizes}.")


def plan_profile(profile: str, gpus: str, nodes: int) -> str:
    from fusechat_utils.config import load_profile

    return render(make_plan(load_profile(profile), gpus, nodes))
