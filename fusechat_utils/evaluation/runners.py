"""Per-stage evaluation: generate, score or judge, record every sample, return result rows.

`evaluate_stage(cfg, stage, model)` runs each benchmark of `cfg.eval_benchmarks`: the toy families, or a registry
entry (`run_graded`: FuseEval's prompt for the model's family, its decoding, every sample graded; `run_judged`:
the entry's own generate-and-judge pipeline); `toy_winrates` judges every non-base stage against the base
target's responses with the toy reward model.
Usage: `rows, samples = evaluate_stage(cfg, "sft", "outputs/toy/05_sft/model")`.

Resume: each (stage, benchmark) is committed when done: its samples/<stage>/<name>.jsonl files first, then
`parts/<stage>/<benchmark>.json` (its result rows and sample names), each written tmp + os.replace. A rerun reads
committed parts back instead of evaluating again, as long as `parts/<stage>/model.json` still names the same model
(path and content hash; a retrained model moves the stage's stale parts aside). Every run, interrupted or not,
builds its rows from the part files, so both give the same results.csv. Shard jobs (`run_shard`, `fusechat run
--shard i/N`) commit consecutive parts into `chunks/shard-<i>-of-<N>/`; a run over the finished shards copies
their parts in (`take_shard_parts`) instead of evaluating them.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

from fusechat_utils import shards
from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import toy, winrate
from fusechat_utils.evaluation.generate import generate_chat, generate_raw, generate_raw_vllm, render_prompts
from fusechat_utils.evaluation.registry import Benchmark, entry, family_of
from fusechat_utils.evaluation.step import PARTS, proportion_row, result_row
from fusechat_utils.io import (atomic_path, content_files, hash_obj, hash_path, read_json, read_jsonl,
                               seed_everything, write_json, write_jsonl)


class NotRunHere(UserError):
    """A benchmark the kit does not run (LiveBench: its own tool; import its number); noted, not fatal."""


def model_hash(model: str) -> str | None:
    """Content hash of a local model folder (None for a hub id), without training_args.bin: that pickle records
    the trainer's paths, not the model, and would make the same weights trained in two run folders differ. Hidden
    files (a temporary file a killed save left behind) are not the model either (`io.content_files`)."""
    path = Path(model)
    if not path.exists():
        return None
    files = [p for p in content_files(path) if p.name != "training_args.bin"]
    return hash_obj({p.relative_to(path).as_posix(): hash_path(p) for p in files})


def generate_for(cfg, model: str, prompts: list[str]) -> list[str]:
    """Greedy chat responses (toy benchmarks: each prompt through the model's own chat template)."""
    if cfg.eval_backend == "vllm":
        from fusechat_utils.models import load_tokenizer

        texts = render_prompts(load_tokenizer(model), prompts)
        greedy = {"temperature": 0.0, "max_tokens": cfg.eval_max_new_tokens}
        return [r[0] for r in generate_raw_vllm(model, texts, greedy, cfg.eval_vllm_python, cfg.eval_dtype)]
    return generate_chat(model, prompts, cfg.eval_max_new_tokens, cfg.eval_batch_size)


def generate_texts(cfg, model: str, texts: list[str], decoding: dict, label: str = "") -> list[list[str]]:
    """`decoding["n"]` samples per raw prompt with the configured backend."""
    if cfg.eval_backend == "vllm":
        return generate_raw_vllm(model, texts, decoding, cfg.eval_vllm_python, cfg.eval_dtype, label=label)
    return generate_raw(model, texts, decoding, cfg.eval_batch_size, label=label)


def run_toy(cfg, stage: str, model: str) -> tuple[list[dict], dict[str, list[dict]]]:
    items = toy.load_toy_benchmarks(cfg.eval_toy_benchmarks_dir)
    responses = generate_for(cfg, model, [it["prompt"] for it in items])
    scored = toy.score_toy(items, responses, cfg.eval_code_timeout_s)
    by_bench: dict[str, list[dict]] = defaultdict(list)
    for row in scored:
        by_bench[row["benchmark"]].append(row)
    rows = [proportion_row(model, stage, bench, toy.METRIC[bench.removeprefix("toy_")],
                           [r["correct"] for r in rs]) for bench, rs in sorted(by_bench.items())]
    followed = [ok for r in by_bench.get("toy_general", []) for ok in r.get("followed", {}).values()]
    if followed:
        rows.append(proportion_row(model, stage, "toy_general_if", toy.METRIC["general_if"], followed))
    # response length per benchmark: the paper's case for LN-DPO is that it curbs verbosity
    for bench, rs in sorted(by_bench.items()):
        mean, stderr = winrate.mean_stderr([len(r["response"]) for r in rs])
        rows.append(result_row(model, stage, f"{bench}_length", "mean_chars", mean, len(rs), stderr))
    return rows, dict(by_bench)


def decoding_for(cfg, bench: Benchmark, family: str) -> dict:
    """FuseEval's decoding for the entry, with the run's max_tokens cap (CPU rehearsals) applied."""
    decoding = dict(bench.decoding(family))
    if cfg.eval_max_tokens_cap:
        decoding["max_tokens"] = min(int(decoding["max_tokens"]), int(cfg.eval_max_tokens_cap))
    decoding.setdefault("seed", cfg.seed)
    return decoding


def load_entry(cfg, bench: Benchmark) -> list[dict]:
    """The entry's items (its first eval_limit), LiveCodeBench kept to eval_lcb_window."""
    items = bench.load(cfg.eval_data_files)
    if bench.dataset == "livecodebench":
        start, end = cfg.eval_lcb_window
        items = [it for it in items if bench.impl().in_window(it, start, end)]
    return items[:cfg.eval_limit] if cfg.eval_limit else items


def grade_samples(impl, items: list[dict], samples: list[list[str]], workers: int = 2) -> list[list[dict]]:
    """Every sample graded; code benchmarks (`grade_many`) run their sandboxes concurrently, equal programs once."""
    pairs = [(it, r) for it, rs in zip(items, samples, strict=True) for r in rs]
    if hasattr(impl, "grade_many"):
        flat = impl.grade_many(pairs, workers=workers)
    else:  # in this thread: math-verify's timeout works only in the main thread
        flat = [impl.grade(*pair) for pair in pairs]
    out, i = [], 0
    for rs in samples:
        out.append(flat[i:i + len(rs)])
        i += len(rs)
    return out


def run_graded(cfg, bench: Benchmark, stage: str, model: str) -> tuple[list[dict], dict[str, list[dict]]]:
    """Prompt as FuseEval does for the model's family, sample, grade every sample; the metric is their mean."""
    from fusechat_utils.models import load_tokenizer

    impl = bench.impl()
    items = load_entry(cfg, bench)
    tokenizer = load_tokenizer(model)
    family = family_of(model, cfg.eval_prompt_family, tokenizer)
    decoding = decoding_for(cfg, bench, family)
    texts = [impl.build_prompt(it, family, tokenizer) for it in items]
    samples = generate_texts(cfg, model, texts, decoding, label=f"07 {bench.name} {stage}")
    graded = grade_samples(impl, items, samples)
    rows = [{"id": it["id"], "prompt": text, "responses": rs, "grades": gs,
             "correct": sum(g[bench.score] for g in gs) / len(gs)}
            for it, text, rs, gs in zip(items, texts, samples, graded)]
    return graded_rows(bench, model, stage, graded), {bench.name: rows}


def graded_rows(bench: Benchmark, model: str, stage: str, graded: list[list[dict]]) -> list[dict]:
    """The headline (mean over items of each item's mean `bench.score`), then each of `bench.more` that every grade
    holds (evalplus's plus score exists only for rows with plus inputs)."""
    out = []
    for suffix, key in (("", bench.score), *bench.more):
        if not all(key in g for gs in graded for g in gs):
            continue
        mean, se = winrate.mean_stderr([sum(g[key] for g in gs) / len(gs) for gs in graded])
        out.append(result_row(model, stage, bench.name, bench.metric + suffix, 100 * mean, len(graded), 100 * se))
    return out


def run_judged(cfg, bench: Benchmark, stage: str, model: str) -> tuple[list[dict], dict[str, list[dict]]]:
    """Generate as FuseEval does, then the benchmark's own judge pipeline (its module's `evaluate`)."""
    from fusechat_utils.evaluation import judge
    from fusechat_utils.models import load_tokenizer

    tokenizer = load_tokenizer(model)
    family = family_of(model, cfg.eval_prompt_family, tokenizer)
    items = load_entry(cfg, bench)

    def generate(texts: list[str], decoding: dict) -> list[str]:
        capped = {**decoding, "n": 1}
        if cfg.eval_max_tokens_cap:
            capped["max_tokens"] = min(int(decoding["max_tokens"]), int(cfg.eval_max_tokens_cap))
        return [r[0] for r in generate_texts(cfg, model, texts, capped)]

    impl = bench.impl()
    run = getattr(impl, "evaluate_stage", None) or impl.evaluate
    kw = {"options": cfg.eval_judge_options.get(bench.name, {})} if "options" in inspect.signature(run).parameters else {}
    rows, samples = run(items, generate, family, tokenizer, judge.client_for(cfg, bench.name),
                        model=model, stage=stage, step_dir=Path(cfg.step_dir), **kw)
    return [r for r in rows if r["n"]], samples  # a per-category mean over no items (a subset run) is no result


def run_benchmark(cfg, name: str, stage: str, model: str):
    """(result rows, samples per benchmark name) of one entry of eval_benchmarks; NotRunHere passes through."""
    if name == "toy":
        return run_toy(cfg, stage, model)
    bench = entry(name)
    if bench.kind == "import":
        raise NotRunHere(f"{bench.grader}")
    return (run_graded if bench.kind == "graded" else run_judged)(cfg, bench, stage, model)


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


def evaluate_part(cfg, stage: str, model: str, bench: str, folder: Path, notes: list[str]):
    """(rows, samples) of one (stage, benchmark), evaluated and committed as a part unless committed already;
    None for a benchmark that cannot run here (noted in `notes`)."""
    part = folder / f"{shards._safe(bench)}.json"
    if not part.exists():
        seed_everything(cfg.seed)  # each part starts from the same state, whether resumed or not
        try:
            got = run_benchmark(cfg, bench, stage, model)
        except NotRunHere as exc:
            notes.append(f"{stage}/{bench}: {exc}")
            return None
        commit_part(cfg, stage, bench, part, got)
    return read_part(cfg, stage, part)


def evaluate_stage(cfg, stage: str, model: str, notes: list[str] | None = None):
    """(result rows, samples per benchmark); a benchmark that cannot run here is noted in `notes`, not fatal.

    Each benchmark is committed as a part when done; committed parts are read back, not evaluated again, and so
    are the parts the finished shards of a job array committed (`run_shard`).
    """
    rows, samples = [], {}
    folder = stage_parts(cfg, stage, model)
    array = shards.shard_count(cfg.step_dir)
    if array:
        take_shard_parts(cfg, stage, model, folder, array)
    for bench in cfg.eval_benchmarks:
        got = evaluate_part(cfg, stage, model, bench, folder, notes if notes is not None else [])
        if got is not None:
            rows += got[0]
            samples.update(got[1])
    return rows, samples


# ------------------------------------------------------------------------------------------------ shards of 07
# The unit is the committed (stage, benchmark) part: a shard job evaluates consecutive parts of the one-process
# run, with the same seeding, into chunks/shard-<i>-of-<N>/ (its own parts/, samples/ and judge caches), so the
# merge reads exactly the parts one process would have committed. Items within a benchmark are not split: judged
# benchmarks score the whole set at once (length-controlled AlpacaEval, Arena-Hard's Bradley-Terry fit).


def shard_view(cfg, shard_index: int, num_shards: int) -> SimpleNamespace:
    """The config as a shard job sees it: the same values, its own folder as the step folder."""
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    return SimpleNamespace(**values, step_dir=shards.shard_dir(cfg.step_dir, shard_index, num_shards))


def shard_units(cfg, models: dict[str, str], num_shards: int) -> list[tuple[str, str, str, int]]:
    """(stage, model, benchmark, shard) of every part, in the one-process run's order."""
    units = [(stage, model, bench) for stage, model in models.items() for bench in cfg.eval_benchmarks]
    return [(*u, owner) for u, owner in zip(units, shards.split_contiguous([1] * len(units), num_shards), strict=True)]


def run_shard(cfg, shard_index: int, num_shards: int) -> dict:
    """Evaluate this shard's parts into chunks/shard-<i>-of-<N>/ (resuming committed ones); returns a summary."""
    from fusechat_utils.evaluation.step import RESUME_FILE, RESUME_INPUTS, resolve_models, resume_values

    models, notes = resolve_models(cfg)
    view = shard_view(cfg, shard_index, num_shards)
    shards.resume_guard(Path(view.step_dir) / PARTS, resume_values(cfg), RESUME_FILE, inputs=RESUME_INPUTS,
                        what="committed results")
    mine = [(stage, model, bench) for stage, model, bench, owner in shard_units(cfg, models, num_shards)
            if owner == shard_index]
    for stage, model, bench in mine:
        evaluate_part(view, stage, model, bench, stage_parts(view, stage, model), notes)
    return {"shard": f"{shard_index}/{num_shards}", "parts": [f"{stage}/{bench}" for stage, _, bench in mine],
            "notes": notes}


def take_shard_parts(cfg, stage: str, model: str, folder: Path, num_shards: int) -> None:
    """Copy the stage's parts (and their samples) that the finished shards committed into this run's folders,
    samples first, as commit_part writes them; a shard not finished, or evaluated with other values or another
    model, is an error naming it."""
    from fusechat_utils.evaluation.step import RESUME_FILE, resume_values

    shards.require_finished(cfg.step_dir, num_shards)
    values, model_values = resume_values(cfg), read_json(folder / "model.json")
    for i in range(num_shards):
        shard_step = shards.shard_dir(cfg.step_dir, i, num_shards)
        shards.check_shard_values(shard_step / PARTS, values, RESUME_FILE)
        source = shard_step / PARTS / shards._safe(stage)
        if not source.is_dir():
            continue  # this shard had no part of this stage
        shards.check_shard_values(source, model_values, "model.json")
        for part in sorted(p for p in source.glob("*.json") if p.name != "model.json"):
            if (folder / part.name).exists():
                continue
            for name in read_json(part)["samples"]:
                copy_atomic(shard_step / "samples" / stage / f"{name}.jsonl",
                            Path(cfg.step_dir) / "samples" / stage / f"{name}.jsonl")
            copy_atomic(part, folder / part.name)


def copy_atomic(source: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)


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
