"""02_sampling: n responses per prompt from each source model, through transformers (`hf`) or vLLM (`vllm`).

Usage: `from fusechat_utils import sampling; sampling.run(sampling.SampleConfig(run_dir="outputs/toy"))`.

Work is split into units (prompt_id, source). Each batch of units is committed as one chunk file, so a killed
run resumes at the first uncommitted batch and, because batches are formed the same way, reproduces the same rows.
`sample_shard_index`/`sample_num_shards` (set by `fusechat run --shard i/N`) give a shard whole batches of the
one-process run (`plan_units`), so the shards together sample exactly its rows; `shards.merge_shards` joins them
into responses.parquet (done automatically when there is one shard, and by a one-process run over finished shards).
With the vllm backend and `sample_devices`, each source's batches are split into replicas that run side by side on
the node's GPUs (`sample_on_devices`, `device_pool.run_items`), again in whole batches.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from fusechat_utils import device_pool, shards, vllm_launch
from fusechat_utils.config import StepConfig, invalid

REFERENCE_MODEL = "Llama-3.1-405B-Instruct"
# the authors' five vLLM runs used these seeds (run_response_infer_scoring_pipeline.sh); sample_seed shifts them
AUTHOR_SEEDS = (13, 21, 42, 79, 100)
TOY_MODELS = "outputs/toy_world/models"
TOY_SOURCES = [
    {"name": "src-llama", "model": f"{TOY_MODELS}/src-llama", "temperature": 0.8, "top_p": 0.95, "repetition_penalty": 1.0},
    {"name": "src-qwen2", "model": f"{TOY_MODELS}/src-qwen2", "temperature": 0.7, "top_p": 0.8, "repetition_penalty": 1.05},
    {"name": "src-gemma2", "model": f"{TOY_MODELS}/src-gemma2", "temperature": 0.8, "top_p": 0.95, "repetition_penalty": 1.0},
    {"name": "src-mistral", "model": f"{TOY_MODELS}/src-mistral", "temperature": 0.8, "top_p": 0.95,
     "repetition_penalty": 1.0},
]
TOY_NAMES = [s["name"] for s in TOY_SOURCES]
SOURCE_KEYS = ("name", "model", "temperature", "top_p", "repetition_penalty")  # every source has these
OPTIONAL_SOURCE_KEYS = ("tensor_parallel_size",)  # its own vLLM tensor parallelism (else sample_tensor_parallel_size)


def _f(default, help_text):
    return field(default_factory=lambda: default, metadata={"help": help_text}) if isinstance(default, (list, dict)) \
        else field(default=default, metadata={"help": help_text})


@dataclass
class SampleConfig(StepConfig):
    STEP: ClassVar[str] = "02_sampling"
    sample_sources: list[dict] = _f(TOY_SOURCES, "source models: name, model, temperature, top_p, repetition_penalty; "
                                    "optional tensor_parallel_size (vLLM)")
    sample_general_sources: list[str] = _f(TOY_NAMES, "source names sampled for general prompts")
    sample_code_sources: list[str] = _f(TOY_NAMES, "source names sampled for code prompts")
    sample_math_sources: list[str] = _f(TOY_NAMES, "source names sampled for math prompts (paper: Qwen2.5-Math-72B)")
    sample_chinese_sources: list[str] = _f(TOY_NAMES, "source names sampled for Chinese prompts (paper: Qwen2.5-72B)")
    sample_n_general: int = _f(4, "samples per general prompt and source (paper 5)")
    sample_n_code: int = _f(4, "samples per code prompt and source (paper 8)")
    sample_n_math: int = _f(4, "samples per math prompt and source (paper: not stated)")
    sample_n_chinese: int = _f(1, "samples per Chinese prompt and source (paper 1)")
    sample_keep_math_reference: bool = _f(True, "keep OpenMathInstruct-2's Llama-3.1-405B solution as a response")
    sample_max_new_tokens: int = _f(48, "max generated tokens per response (paper: not stated; SimPO 4096)")
    sample_backend: str = _f("hf", "hf (transformers generate) or vllm (offline vllm.LLM in a worker process)")
    sample_seed: int = _f(0, "shifts the per-sample seeds (the authors' 13 21 42 79 100)")
    sample_batch_size: int = _f(128, "prompts per batch; one committed chunk per batch")
    sample_workers: int = _f(2, "hf backend: sources sampled at once, one process each (CPU: the cores are split)")
    sample_dtype: str = _f("auto", "model dtype: auto, bfloat16, float32")
    sample_tensor_parallel_size: int = _f(1, "vLLM tensor_parallel_size of sources without their own")
    sample_devices: str = _f("", "vllm backend: GPU ids of this node the vLLM workers share, e.g. 0,1,2,3,4,5,6,7 "
                                 "(replicas and sources at once); empty: one worker at a time, devices left to vLLM")
    sample_gpu_memory_utilization: float = _f(0.3, "vLLM gpu_memory_utilization (on CPU: fraction of RAM)")
    sample_vllm_python: str = _f(".venv-vllm/bin/python", "python of the venv that has vllm (empty: this interpreter)")
    sample_shard_index: int = _f(0, "which shard (whole batches) this run samples; set by fusechat run --shard")
    sample_num_shards: int = _f(1, "number of shards (one job each); the last to finish merges (fusechat merge)")

    def __post_init__(self) -> None:
        super().__post_init__()  # types; batch, workers, shards, tensor parallel >= 1, sample_n_* >= 0, seed >= 0
        if self.sample_backend not in ("hf", "vllm"):
            raise invalid(f"sample_backend must be 'hf' or 'vllm', got {self.sample_backend!r}", "sample_backend")
        if self.sample_dtype not in DTYPES:
            raise invalid(f"key 'sample_dtype' must be one of {DTYPES}, got {self.sample_dtype!r}", "sample_dtype")
        if not 0 < self.sample_gpu_memory_utilization <= 1:
            raise invalid(f"key 'sample_gpu_memory_utilization' must be in (0, 1], got "
                          f"{self.sample_gpu_memory_utilization}", "sample_gpu_memory_utilization")
        if not 0 <= self.sample_shard_index < self.sample_num_shards:
            raise invalid(f"key 'sample_shard_index' ({self.sample_shard_index}) must be in [0, sample_num_shards="
                          f"{self.sample_num_shards})", "sample_shard_index", "sample_num_shards")
        names = set()
        for i, src in enumerate(self.sample_sources):
            if not set(SOURCE_KEYS) <= set(src) <= set(SOURCE_KEYS + OPTIONAL_SOURCE_KEYS):
                raise invalid(f"sample_sources[{i}]: keys must be {list(SOURCE_KEYS)}, optionally "
                              f"{list(OPTIONAL_SOURCE_KEYS)}; got {sorted(src)}", "sample_sources")
            bad = _bad_source_value(src)
            if bad:
                raise invalid(f"sample_sources[{i}] ({src.get('name')!r}): {bad}", "sample_sources")
            stem = shards.chunk_stem(src["name"])
            same = next((n for n in names if shards.chunk_stem(n) == stem), None)
            if same is not None:
                why = "is used twice" if same == src["name"] else f"and {same!r} name the same chunk files ({stem}-*)"
                raise invalid(f"sample_sources[{i}]: name {src['name']!r} {why}", "sample_sources")
            names.add(src["name"])
        self.check_devices()
        for key in ("general", "code", "math", "chinese"):
            unknown = set(getattr(self, f"sample_{key}_sources")) - names
            if unknown:
                raise invalid(f"sample_{key}_sources: {sorted(unknown)} not in sample_sources",
                              f"sample_{key}_sources")

    def check_devices(self) -> None:
        """sample_devices: distinct non-negative ids, at least as many as the largest tensor parallelism."""
        try:
            devices = device_pool.parse_devices(self.sample_devices)
        except ValueError as err:
            raise invalid(f"key 'sample_devices' ({self.sample_devices!r}): {err}", "sample_devices") from None
        widest = max(self.sample_sources, key=lambda s: tensor_parallel(self, s), default=None)
        if devices and widest and len(devices) < tensor_parallel(self, widest):
            raise invalid(f"key 'sample_devices' lists {len(devices)} device(s); source {widest['name']!r} needs "
                          f"{tensor_parallel(self, widest)} (its tensor parallel size)", "sample_devices")


def tensor_parallel(cfg: SampleConfig, src: dict) -> int:
    """A source's vLLM tensor parallel size: its own `tensor_parallel_size`, else sample_tensor_parallel_size."""
    return src.get("tensor_parallel_size", cfg.sample_tensor_parallel_size)


DTYPES = ("auto", "bfloat16", "float16", "float32")


def _bad_source_value(src: dict) -> str | None:
    """Why a source's sampling values are impossible, or None."""
    if not isinstance(src["name"], str) or not src["name"]:
        return f"'name' must be a non-empty string, got {src['name']!r}"
    if not isinstance(src["model"], str) or not src["model"]:
        return f"'model' must be a non-empty string (hub id or local folder), got {src['model']!r}"
    for key, lo, hi, lo_open in (("temperature", 0, None, False), ("top_p", 0, 1, True),
                                 ("repetition_penalty", 0, None, True)):
        value = src[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"'{key}' must be a finite number, got {value!r}"
        if value < lo or (lo_open and value == lo) or (hi is not None and value > hi):
            bounds = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}{']' if hi is not None else ')'}"
            return f"'{key}' must be in {bounds}, got {value!r}"
    tp = src.get("tensor_parallel_size", 1)
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        return f"'tensor_parallel_size' must be an integer >= 1, got {tp!r}"
    return None


def sample_seeds(seed: int, n: int) -> list[int]:
    """One seed per sample index: the authors' five seeds (+ seed), then further ones spaced the same way."""
    return [(AUTHOR_SEEDS[k] if k < len(AUTHOR_SEEDS) else 100 + 1000 * k) + seed for k in range(n)]


UNIT_COLUMNS = ["prompt_id", "dataset", "category", "prompt", "source_model", "n_samples"]


def plan_units(cfg: SampleConfig, prompts: pd.DataFrame, units: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows (prompt_id, dataset, category, prompt, source_model, n_samples) this shard owes, in a fixed order
    (`units`: the one-process run's, if already planned).

    Shards take whole batches of the one-process run (`batches`), in consecutive runs of about equal cost (the
    samples to generate). A batch is generated in one call under one seed per sample index, so a row depends on
    which prompts share its batch: whole batches give exactly the one-process run's rows, a split by prompt would
    not. A shard then re-cuts its units into the same batches: all but a (source, n) group's last are full.
    """
    units = all_units(cfg, prompts) if units is None else units
    if cfg.sample_num_shards == 1:
        return units
    whole_run = batches(units, cfg.sample_batch_size)
    owner = shards.split_contiguous([len(b) * int(b.n_samples.iloc[0]) for b in whole_run], cfg.sample_num_shards)
    mine = [b for b, shard in zip(whole_run, owner, strict=True) if shard == cfg.sample_shard_index]
    return pd.concat(mine, ignore_index=True) if mine else units.iloc[:0]


def all_units(cfg: SampleConfig, prompts: pd.DataFrame) -> pd.DataFrame:
    """Every unit of the one-process run: each source's prompts of the categories it samples, in prompt order."""
    rows = []
    for src in cfg.sample_sources:
        for p in prompts.itertuples(index=False):
            if p.category not in ("general", "code", "math", "chinese"):
                raise ValueError(f"prompts.parquet: prompt_id {p.prompt_id}: unknown category {p.category!r}")
            n = getattr(cfg, f"sample_n_{p.category}")
            if src["name"] in getattr(cfg, f"sample_{p.category}_sources") and n > 0:
                rows.append({"prompt_id": p.prompt_id, "dataset": p.dataset, "category": p.category,
                             "prompt": p.prompt, "source_model": src["name"], "n_samples": n})
    return pd.DataFrame(rows, columns=UNIT_COLUMNS)


def reference_rows(cfg: SampleConfig, prompts: pd.DataFrame) -> list[dict]:
    if not cfg.sample_keep_math_reference:
        return []
    mine = prompts[[shards.shard_of(p, cfg.sample_num_shards) == cfg.sample_shard_index for p in prompts.prompt_id]]
    keep = mine[(mine.category == "math") & mine.reference_response.notna()]
    return [{"prompt_id": r.prompt_id, "dataset": r.dataset, "category": r.category, "source_model": REFERENCE_MODEL,
             "sample_index": 0, "seed": None, "response": r.reference_response, "finish_reason": "reference",
             "n_tokens": None} for r in keep.itertuples()]


def batches(units: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """Consecutive units with the same n_samples, at most `size` each (same split on every restart)."""
    out = []
    for _, group in units.groupby(["source_model", "n_samples"], sort=False):
        out += [group.iloc[i:i + size] for i in range(0, len(group), size)]
    return out


def template_ids(tok, prompt: str) -> list[int]:
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def read_prompts(run_dir: str | Path) -> pd.DataFrame:
    from fusechat_utils.io import read_parquet

    path = Path(run_dir) / "01_prompts" / "prompts.parquet"
    df = read_parquet(path)  # missing, corrupt or truncated: an error naming the file and 01_prompts
    missing = {"prompt_id", "dataset", "category", "prompt", "reference_response"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    bad = df.prompt.isna() | (df.prompt.astype(str).str.strip() == "")
    if bad.any():
        raise ValueError(f"{path}: row {int(bad.idxmax())} (prompt_id {df.prompt_id[bad.idxmax()]}): empty prompt")
    return df


def run(cfg: SampleConfig) -> dict:
    """Sample this shard (resuming committed chunks); merge when there is a single shard. Returns a summary.

    A one-process run over the finished shards of a job array (`fusechat run --shard i/N`) samples nothing: it
    merges them, after checking that each was sampled with this run's values and prompts."""
    prompts = read_prompts(cfg.run_dir)
    array = shards.shard_count(cfg.step_dir) if cfg.sample_num_shards == 1 else None
    if array:
        return merge_array(cfg, prompts, array)
    chunk_dir = shards.shard_dir(cfg.step_dir, cfg.sample_shard_index, cfg.sample_num_shards)
    check_resume_params(cfg, chunk_dir)
    units = plan_units(cfg, prompts)
    refs = reference_rows(cfg, prompts)
    shards.write_parquet_atomic(chunk_dir / shards.EXPECTED, expected_units(units, refs))
    done = shards.done_units(chunk_dir)
    if refs and not any(src == REFERENCE_MODEL for _, src in done):
        shards.write_chunk(chunk_dir, REFERENCE_MODEL, refs)
    todo = units[[(p, s) not in done for p, s in zip(units.prompt_id, units.source_model, strict=True)]]
    by_name = {s["name"]: s for s in cfg.sample_sources}
    groups = [(by_name[name], group) for name, group in todo.groupby("source_model", sort=False)]
    if cfg.sample_backend == "hf" and cfg.sample_workers > 1 and len(groups) > 1:
        sample_in_processes(cfg, groups, chunk_dir)
    elif cfg.sample_backend == "vllm" and cfg.sample_devices:
        sample_on_devices(cfg, groups, chunk_dir)
    else:
        for src, group in groups:
            sample_source(cfg, src, group, chunk_dir)
    summary = {"shard": f"{cfg.sample_shard_index}/{cfg.sample_num_shards}", "units": len(units),
               "resumed_units": len(units) - len(todo), "backend": cfg.sample_backend}
    if cfg.sample_num_shards == 1:
        path = shards.merge_shards(cfg.step_dir, num_shards=1)
        summary.update(responses=str(path), rows=len(pd.read_parquet(path)))
    return summary


def merge_array(cfg: SampleConfig, prompts: pd.DataFrame, num_shards: int) -> dict:
    """responses.parquet from the N shards of a job array; a shard not finished, or sampled under other values
    or from other prompts than this run's, is an error naming it (nothing is merged)."""
    shards.require_finished(cfg.step_dir, num_shards)
    units = all_units(cfg, prompts)
    for i in range(num_shards):
        shard = dataclasses.replace(cfg, sample_shard_index=i, sample_num_shards=num_shards)
        folder = shards.shard_dir(cfg.step_dir, i, num_shards)
        shards.check_shard_values(folder, resume_values(cfg), RESUME_FILE)
        want = expected_units(plan_units(shard, prompts, units), reference_rows(shard, prompts))
        if unit_list(want) != unit_list(pd.read_parquet(folder / shards.EXPECTED)):
            raise shards.ShardError(f"{folder}: planned from other prompts than {cfg.run_dir}/01_prompts has now; "
                                    f"rerun the shards, or move {folder.parent} aside")
    path = shards.merge_shards(cfg.step_dir, num_shards=num_shards)
    return {"shards": num_shards, "responses": str(path), "rows": len(pd.read_parquet(path)),
            "backend": cfg.sample_backend}


def unit_list(expected: pd.DataFrame) -> list[tuple[str, str, int]]:
    return [(str(p), str(s), int(n)) for p, s, n in expected[["prompt_id", "source_model", "n_samples"]].itertuples(
        index=False, name=None)]


def expected_units(units: pd.DataFrame, refs: list[dict]) -> pd.DataFrame:
    """(prompt_id, source_model, n_samples) of every unit a shard owes: what its expected.parquet holds."""
    kept = [{"prompt_id": r["prompt_id"], "source_model": REFERENCE_MODEL, "n_samples": 1} for r in refs]
    return pd.concat([units[["prompt_id", "source_model", "n_samples"]], pd.DataFrame(kept)], ignore_index=True)


# What the committed rows depend on: a resume under other values would mix two samplings in one file.
RESUME_KEYS = ("sample_sources", "sample_general_sources", "sample_code_sources", "sample_math_sources",
               "sample_chinese_sources", "sample_n_general", "sample_n_code", "sample_n_math", "sample_n_chinese",
               "sample_keep_math_reference", "sample_max_new_tokens", "sample_backend", "sample_seed",
               "sample_batch_size", "sample_dtype")
RESUME_FILE = "sampling_params.json"


def check_resume_params(cfg: SampleConfig, chunk_dir: Path) -> None:
    """Chunks are resumed only under the params they were sampled with; a change is an error naming the keys."""
    shards.resume_guard(chunk_dir, resume_values(cfg), RESUME_FILE)


def resume_values(cfg: SampleConfig) -> dict:
    """RESUME_KEYS' values. A source's tensor_parallel_size is left out, as sample_tensor_parallel_size and
    sample_devices are: where a source runs is not what its rows are (and chunks committed before a source had
    one still resume)."""
    values = {k: getattr(cfg, k) for k in RESUME_KEYS}
    values["sample_sources"] = [{k: v for k, v in s.items() if k not in OPTIONAL_SOURCE_KEYS}
                                for s in cfg.sample_sources]
    return values


def sample_source(cfg: SampleConfig, src: dict, units: pd.DataFrame, chunk_dir: Path, part: int = 0,
                  devices: list[int] | None = None) -> None:
    """Sample `units` of one source (one replica `part` of it on `devices`, under sample_devices)."""
    from fusechat_utils.models import load_tokenizer

    tok = load_tokenizer(src["model"], padding_side="left")
    jobs = [[{"prompt_id": u.prompt_id, "dataset": u.dataset, "category": u.category,
              "prompt_token_ids": template_ids(tok, u.prompt),
              "seeds": sample_seeds(cfg.sample_seed, int(u.n_samples))} for u in b.itertuples()]
            for b in batches(units, cfg.sample_batch_size)]
    if cfg.sample_backend == "vllm":
        run_vllm_worker(cfg, src, jobs, chunk_dir, part, devices)
    else:
        from fusechat_utils.sampling_hf import generate_batches

        generate_batches(cfg, src, tok, jobs, chunk_dir)


def sample_in_processes(cfg: SampleConfig, groups: list[tuple[dict, pd.DataFrame]], chunk_dir: Path) -> None:
    """hf backend: `sample_workers` sources at once, each in its own process with its share of the CPU threads
    (small models scale poorly over threads, so two 1-thread processes beat one 2-thread process)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // cfg.sample_workers)
    with ProcessPoolExecutor(min(cfg.sample_workers, len(groups)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_set_torch_threads, initargs=(threads,)) as pool:
        futures = [pool.submit(sample_source, cfg, src, group, chunk_dir) for src, group in groups]
        for future in futures:
            future.result()  # a failed source raises here; chunks the others committed are kept for the resume


def _set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def sample_on_devices(cfg: SampleConfig, groups: list[tuple[dict, pd.DataFrame]], chunk_dir: Path) -> None:
    """vllm backend over `sample_devices`: each source's batches in `replica_parts` (one vLLM worker each, on
    its tensor_parallel_size devices), all run by `device_pool.run_items` as devices free up. A failed replica
    does not stop the others; then one error names it, and every committed chunk is kept for the resume."""
    devices = device_pool.parse_devices(cfg.sample_devices)
    try:  # ids this process cannot see fail here, before any worker starts
        device_pool.visible_devices(devices, os.environ.get("CUDA_VISIBLE_DEVICES"))
    except ValueError as err:
        raise invalid(f"key 'sample_devices' ({cfg.sample_devices!r}): {err}", "sample_devices") from None
    items = []
    for src, units in groups:
        tp = tensor_parallel(cfg, src)
        parts = replica_parts(batches(units, cfg.sample_batch_size), len(devices) // tp)
        for part, part_units in enumerate(parts):
            run = functools.partial(sample_source, cfg, src, part_units, chunk_dir, part)
            items.append(device_pool.Item(f"{src['name']} part {part + 1}/{len(parts)}", tp, run))
    device_pool.run_items(items, devices, cancel=vllm_launch.kill_running)


def replica_parts(source_batches: list[pd.DataFrame], replicas: int) -> list[pd.DataFrame]:
    """A source's batches as at most `replicas` consecutive runs of about equal cost (prompts x samples), whole
    batches each: a replica re-cuts its units into exactly these batches (`batches`), so its rows are the
    one-worker run's."""
    owner = shards.split_contiguous([len(b) * int(b.n_samples.iloc[0]) for b in source_batches],
                                    max(1, min(replicas, len(source_batches))))
    runs = [[b for b, o in zip(source_batches, owner, strict=True) if o == k] for k in sorted(set(owner))]
    return [pd.concat(run, ignore_index=True) for run in runs]


def run_vllm_worker(cfg: SampleConfig, src: dict, jobs: list[list[dict]], chunk_dir: Path, part: int = 0,
                    devices: list[int] | None = None) -> None:
    """vLLM lives in its own venv: hand the templated batches to `python -m fusechat_utils.sampling_vllm`, on
    `devices` (CUDA_VISIBLE_DEVICES) when given, else on whatever vLLM finds."""
    env, label = {}, src["name"]
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = device_pool.visible_devices(devices, os.environ.get("CUDA_VISIBLE_DEVICES"))
        label += f" part {part + 1} on devices {env['CUDA_VISIBLE_DEVICES']}"
    request = {"source": src, "batches": jobs, "chunk_dir": str(chunk_dir), "max_new_tokens": cfg.sample_max_new_tokens,
               "tensor_parallel_size": tensor_parallel(cfg, src), "dtype": cfg.sample_dtype,
               "gpu_memory_utilization": cfg.sample_gpu_memory_utilization, "part": part, "label": label}
    req_path = chunk_dir / f".vllm-request-{shards.chunk_stem(src['name'], part)}.json"
    req_path.write_text(json.dumps(request))
    python = cfg.sample_vllm_python or sys.executable
    code = vllm_launch.run_module(python, "fusechat_utils.sampling_vllm", [str(req_path)], env)
    if code != 0:
        raise RuntimeError(f"vLLM worker for {label} ({vllm_launch.python_path(python)}) exited with {code}; "
                           "committed chunks are kept, rerun to resume")
