"""02_sampling: schema, seeds, shards, resume after a kill, and the vLLM backend run for real."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fusechat_utils import sampling, shards
from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.sampling import REFERENCE_MODEL, SampleConfig
from fusechat_utils.tiny import tiny_causal_lm

VLLM_PYTHON = PROJECT_ROOT / ".venv-vllm" / "bin" / "python"
CORPUS = ["add 2 and 3", "what is 7 times 8", "write a function", "hello world", "你好 世界", "the answer is 42"]


def build_source(path: Path, style: str) -> str:
    """A 1-layer Llama (head_dim 64, what vLLM's CPU attention supports) with the toy source's tokenizer."""
    return tiny_causal_lm(path, CORPUS * 20, spec=f"src-{style}", layers=1, max_positions=512)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return [{"name": f"src-{s}", "model": build_source(root / s, s), "temperature": 0.8, "top_p": 0.95,
             "repetition_penalty": 1.0} for s in ("llama", "qwen2")]


def write_prompts(run_dir: Path, n: int = 6) -> pd.DataFrame:
    cats = ["general", "code", "math", "chinese"]
    rows = []
    for i in range(n):
        cat = cats[i % 4]
        pid = hashlib.sha256(f"p{i}".encode()).hexdigest()[:16]
        rows.append({"prompt_id": pid, "dataset": f"ds-{cat}", "category": cat, "prompt": CORPUS[i % len(CORPUS)],
                     "gold_answer": "42" if cat == "math" else None, "tests": None, "entry_point": None,
                     "language": "zh" if cat == "chinese" else "en",
                     "reference_response": "The answer is \\boxed{42}." if cat == "math" else None,
                     "reference_model": REFERENCE_MODEL if cat == "math" else None})
    df = pd.DataFrame(rows)
    (run_dir / "01_prompts").mkdir(parents=True, exist_ok=True)
    df.to_parquet(run_dir / "01_prompts" / "prompts.parquet", index=False)
    return df


def make_cfg(run_dir: Path, sources: list[dict], **kw) -> SampleConfig:
    names = [s["name"] for s in sources]
    base = dict(run_dir=str(run_dir), sample_sources=sources, sample_general_sources=names, sample_code_sources=names,
                sample_math_sources=names[:1], sample_chinese_sources=names[1:], sample_n_general=2, sample_n_code=3,
                sample_n_math=2, sample_n_chinese=1, sample_max_new_tokens=8, sample_batch_size=2,
                sample_dtype="float32", sample_vllm_python=str(VLLM_PYTHON))
    return SampleConfig(**{**base, **kw})


def test_schema_counts_and_reference_rows(tmp_path, sources):
    prompts = write_prompts(tmp_path)
    summary = sampling.run(make_cfg(tmp_path, sources))
    df = pd.read_parquet(summary["responses"])
    assert list(df.columns) == shards.COLUMNS
    n_cat = prompts.category.value_counts()
    # general x2 sources x2, code x2 x3, math: 1 source x2 + the kept reference, chinese: 1 source x1
    want = n_cat["general"] * 4 + n_cat["code"] * 6 + n_cat["math"] * 3 + n_cat.get("chinese", 0) * 1
    assert len(df) == want and not df.duplicated(shards.KEY).any()
    ref = df[df.source_model == REFERENCE_MODEL]
    assert len(ref) == n_cat["math"] and (ref.response == "The answer is \\boxed{42}.").all()
    sampled = df[df.source_model != REFERENCE_MODEL]
    assert set(sampled.finish_reason) <= {"stop", "length"} and sampled.n_tokens.between(1, 8).all()
    assert set(sampled.seed) == set(sampling.sample_seeds(0, 3))
    assert set(df[df.category == "chinese"].source_model) == {"src-qwen2"}


@pytest.mark.slow
def test_same_seed_same_output_other_seed_differs(tmp_path, sources):
    write_prompts(tmp_path / "a")
    write_prompts(tmp_path / "b")
    write_prompts(tmp_path / "c")
    a = pd.read_parquet(sampling.run(make_cfg(tmp_path / "a", sources))["responses"])
    b = pd.read_parquet(sampling.run(make_cfg(tmp_path / "b", sources))["responses"])
    c = pd.read_parquet(sampling.run(make_cfg(tmp_path / "c", sources, sample_seed=1))["responses"])
    pd.testing.assert_frame_equal(a, b)
    assert (a.response != c.response).any()


def test_seeds_follow_the_authors_list():
    assert sampling.sample_seeds(0, 5) == [13, 21, 42, 79, 100]
    seeds = sampling.sample_seeds(3, 8)
    assert seeds[:5] == [16, 24, 45, 82, 103] and len(set(seeds)) == 8


@pytest.mark.slow
def test_shards_cover_every_unit_exactly_once_and_merge(tmp_path, sources):
    prompts = write_prompts(tmp_path, n=8)
    ids = [f"id-{i}" for i in range(1000)]
    counts = pd.Series([shards.shard_of(p, 4) for p in ids]).value_counts()
    assert sorted(counts.index) == [0, 1, 2, 3] and counts.min() > 200
    for i in range(3):
        cfg = make_cfg(tmp_path, sources, sample_shard_index=i, sample_num_shards=3)
        assert "responses" not in sampling.run(cfg)
        if i == 1:
            with pytest.raises(ValueError, match=r"shard\(s\) \[2\] of 3"):
                shards.merge_shards(cfg.step_dir)
    merged = pd.read_parquet(shards.merge_shards(tmp_path / "02_sampling"))
    assert set(merged.prompt_id) == set(prompts.prompt_id)
    # a shard owns whole batches of the one-process run: each (prompt, source) unit is sampled by exactly one shard
    per_shard = [set(zip(*(shards.read_chunks(shards.shard_dir(tmp_path / "02_sampling", i, 3))[c]
                           for c in ("prompt_id", "source_model")))) for i in range(3)]
    assert all(per_shard) and sum(map(len, per_shard)) == len(set(zip(merged.prompt_id, merged.source_model)))


@pytest.mark.slow
def test_merge_refuses_an_incomplete_unit(tmp_path, sources):
    write_prompts(tmp_path)
    cfg = make_cfg(tmp_path, sources)
    sampling.run(cfg)
    chunk_dir = shards.shard_dir(cfg.step_dir, 0, 1)
    last = sorted(chunk_dir.glob("src-llama-*.parquet"))[-1]
    df = pd.read_parquet(last)
    df.iloc[:-1].to_parquet(last, index=False)  # drop one committed response
    with pytest.raises(ValueError, match="incomplete unit"):
        shards.merge_shards(cfg.step_dir)


@pytest.mark.slow
def test_sources_in_parallel_processes_give_the_rows_of_one_process(tmp_path, sources):
    write_prompts(tmp_path / "one")
    write_prompts(tmp_path / "two")
    one = pd.read_parquet(sampling.run(make_cfg(tmp_path / "one", sources, sample_workers=1))["responses"])
    two = pd.read_parquet(sampling.run(make_cfg(tmp_path / "two", sources, sample_workers=2))["responses"])
    pd.testing.assert_frame_equal(one, two)
    with pytest.raises(ValueError, match="sample_workers"):
        make_cfg(tmp_path, sources, sample_workers=0)


def test_resuming_with_changed_params_names_them_and_keeps_the_chunks(tmp_path, sources):
    write_prompts(tmp_path)
    sampling.run(make_cfg(tmp_path, sources, sample_workers=1))
    chunk_dir = shards.shard_dir(tmp_path / "02_sampling", 0, 1)
    before = {p.name: p.read_bytes() for p in chunk_dir.glob("*.parquet")}
    with pytest.raises(ValueError, match=r"sample_max_new_tokens=8; this run has sample_max_new_tokens=9"):
        sampling.run(make_cfg(tmp_path, sources, sample_workers=1, sample_max_new_tokens=9))
    assert {p.name: p.read_bytes() for p in chunk_dir.glob("*.parquet")} == before
    sampling.run(make_cfg(tmp_path, sources, sample_workers=2))  # what the rows do not depend on may change


def test_bad_config_and_bad_prompts_name_the_problem(tmp_path, sources):
    with pytest.raises(ValueError, match="sample_math_sources"):
        make_cfg(tmp_path, sources, sample_math_sources=["nope"])
    with pytest.raises(ValueError, match="sample_backend"):
        make_cfg(tmp_path, sources, sample_backend="tgi")
    prompts = write_prompts(tmp_path)
    prompts.loc[3, "prompt"] = " "
    prompts.to_parquet(tmp_path / "01_prompts" / "prompts.parquet", index=False)
    with pytest.raises(ValueError, match=r"prompts.parquet: row 3 .*empty prompt"):
        sampling.run(make_cfg(tmp_path, sources))


KILL_AFTER_FIRST_CHUNK = """
import os, sys
from fusechat_utils import sampling, shards
real = shards.write_chunk
def write_then_die(chunk_dir, source, rows):
    path = real(chunk_dir, source, rows)
    if source != sampling.REFERENCE_MODEL:
        os._exit(9)  # killed right after the first sampled batch was committed
    return path
shards.write_chunk = write_then_die
cfg = sampling.SampleConfig(**{config})
sampling.run(cfg)
"""


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, sources):
    """A whole sampling process dies right after its first sampled batch is committed; the rerun resumes. (The vllm
    backend's kill and resume: tests/test_device_pool.py, two replicas killed at once.)"""
    write_prompts(tmp_path / "full")
    write_prompts(tmp_path / "killed")
    # one process: the kill hook below patches this process's chunk writer
    full = pd.read_parquet(sampling.run(make_cfg(tmp_path / "full", sources, sample_workers=1))["responses"])
    cfg = make_cfg(tmp_path / "killed", sources, sample_workers=1)
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHUNK.format(config=repr(fields))],
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, cwd=PROJECT_ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr[-2000:]
    chunk_dir = shards.shard_dir(cfg.step_dir, 0, 1)
    assert len(list(chunk_dir.glob("src-llama-*.parquet"))) == 1
    assert not (cfg.step_dir / "responses.parquet").exists()
    summary = sampling.run(cfg)
    assert summary["resumed_units"] == 2
    resumed = pd.read_parquet(summary["responses"])
    pd.testing.assert_frame_equal(resumed, full)


def vllm_processes() -> list[str]:
    """Command lines of live processes started from .venv-vllm (the killed worker's orphans, if any)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and ".venv-vllm" in cmdline:
            found.append(cmdline)
    return found
