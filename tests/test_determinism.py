"""Determinism on one machine: the toy world and the data steps give the same bytes twice, whatever the load,
the hash seed or the step cache; another sample_seed gives other samples (03-07: tests/test_kill_resume.py).

Across machines bit-equality is not promised: torch picks its CPU kernels by instruction set and MKL its code path
by CPU (60 training steps of one toy source: ATEN_CPU_CAPABILITY=avx2 or MKL_CBWR=COMPATIBLE each give other
weights than the default AVX512 kernels, same loss to 4 decimals; 1 or 2 torch threads give the same weights), so a
toy world built elsewhere can differ in the last bits. The toy pipeline test therefore asserts wide margins only.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusechat_utils.config import PARAMS_DIR, PROJECT_ROOT
from fusechat_utils.toy import Recipe, build

# Smaller than test_toy.TINY where it does not matter, enough data for every pipeline step to have rows.
SMALL = Recipe(source_steps=12, math_source_steps=12, target_steps=6, reward_steps=4, strong_examples=60,
               weak_examples=10, target_examples=20, reward_pairs=20, eval_examples=4, bench_examples=8,
               fixture_rows=40)


def world_digest(world: Path) -> dict:
    """Every model's weights and tokenizer, the fixtures and benchmarks, and the manifest without its timings."""
    manifest = json.loads((world / "manifest.json").read_text())
    for info in manifest["models"].values():
        info.pop("train_s", None)
    manifest.pop("build_s")
    files = {str(p.relative_to(world)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(world.rglob("*"))
             if p.is_file() and p.name != "manifest.json"}
    return {"manifest": manifest, "files": files}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    return build(tmp_path_factory.mktemp("det") / "world", recipe=SMALL)


@pytest.mark.slow
def test_two_builds_of_the_toy_world_are_identical(small_world, tmp_path, monkeypatch):
    # another hash seed in the workers (set/dict order of str keys) and a CPU-burning neighbour (load)
    monkeypatch.setenv("PYTHONHASHSEED", "12345")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        again = build(tmp_path / "world", recipe=SMALL, force=True)
    finally:
        burner.kill()
        burner.wait()
    first, second = world_digest(small_world), world_digest(again)
    assert first["manifest"] == second["manifest"]
    differ = sorted(k for k in first["files"].keys() | second["files"].keys()
                    if first["files"].get(k) != second["files"].get(k))
    assert not differ, f"files differ between two builds: {differ[:10]}"
    assert any(k.endswith("model.safetensors") for k in first["files"])


# Artifacts of each step that hold results; what is left out holds wall times (manifest, metrics, log history,
# timing files, executed notebooks, plots), trainer checkpoints (compared through the final model), the pickled
# TrainingArguments (its output_dir) and the run lock. Text files name the run folder, which differs; 07's
# parts/*/model.json hash the whole model folder, training_args.bin included (the weights are compared instead).
SKIP = {"manifest.json", "metrics.json", "log_history.json", "trainer_state.json", "training_args.bin", ".lock"}


def artifacts(run_dir: Path) -> dict[str, str]:
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if (not path.is_file() or "checkpoints" in rel.parts or rel.suffix in (".ipynb", ".png")
                or path.name in SKIP or "timing" in path.name):
            continue
        data = path.read_bytes()
        if rel.parts[0] == "07_eval" and path.name == "model.json":
            data = json.dumps({k: v for k, v in json.loads(data).items() if k != "model_hash"}).encode()
        if rel.suffix in (".json", ".jsonl", ".csv", ".txt"):
            data = data.replace(str(run_dir).encode(), b"<run_dir>")
        out[str(rel)] = hashlib.sha256(data).hexdigest()
    return out


def small_profile(world: Path, folder: Path) -> Path:
    """params/toy with every toy-world path pointing at `world`."""
    folder.mkdir()
    for src in sorted((PARAMS_DIR / "toy").glob("*.yaml")):
        (folder / src.name).write_text(src.read_text().replace("outputs/toy_world", str(world)))
    return folder


SMALL_SETTINGS = [
    "prompts_max_per_dataset={UltraFeedback: 6, Magpie-Pro-DPO-100K-v0.1: 6, HelpSteer2: 6, OpenMathInstruct-2: 8, "
    "leetcode: 4, self-oss-instruct-sc2-exec-filter-50k: 6, alpaca_gpt4_zh: 4, Magpie-Qwen2-Pro-200K-Chinese: 4}",
    "sample_n_general=2", "sample_n_code=2", "sample_n_math=2", "sample_max_new_tokens=12", "sample_batch_size=16",
    "pairs_gap_min=0.0", "pairs_gap_max=1000.0",
    "sft_max_steps=4", "sft_save_steps=2", "sft_logging_steps=1", "sft_per_device_train_batch_size=8",
    "sft_global_batch_size=8",
    "dpo_max_steps=2", "dpo_save_steps=1", "dpo_logging_steps=1", "dpo_eval_fraction=0.0",
    "eval_max_new_tokens=12",
]


def run_pipeline(profile: Path, run_dir: Path, cache: Path, *extra: str, steps: str | None = None):
    sets = [a for s in [*SMALL_SETTINGS, f"run_dir={run_dir}", *extra] for a in ("--set", s)]
    env = {**os.environ, "FUSECHAT_STEP_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fusechat_utils", "run", "--profile", str(profile), "--force", *sets]
    done = subprocess.run(cmd + (["--steps", steps] if steps else []), cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return artifacts(run_dir)


@pytest.mark.slow
def test_sampling_twice_gives_identical_samples_and_another_sample_seed_other_ones(small_world, tmp_path):
    """01-02 twice with the same seeds: the same bytes; sample_seed=1: other samples. The whole pipeline twice
    (03-07 too, across run folders and step caches, one run killed and resumed at 14 points) is compared file
    by file in tests/test_kill_resume.py."""
    profile = small_profile(small_world, tmp_path / "profile")
    first = run_pipeline(profile, tmp_path / "a", tmp_path / "cache_a", steps="01-02")
    second = run_pipeline(profile, tmp_path / "b", tmp_path / "cache_b", steps="01-02")
    assert "02_sampling/responses.parquet" in first
    differ = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
    assert not differ, f"artifacts differ between two runs with the same seeds: {differ}"

    other = run_pipeline(profile, tmp_path / "c", tmp_path / "cache_c", "sample_seed=1", steps="01-02")
    assert other["01_prompts/prompts.parquet"] == first["01_prompts/prompts.parquet"]
    assert other["02_sampling/responses.parquet"] != first["02_sampling/responses.parquet"]
    import pandas as pd

    a = pd.read_parquet(tmp_path / "a" / "02_sampling" / "responses.parquet")
    c = pd.read_parquet(tmp_path / "c" / "02_sampling" / "responses.parquet")
    key = ["prompt_id", "source_model", "sample_index"]
    merged = a.merge(c, on=key, suffixes=("_a", "_c"))
    assert len(merged) == len(a) and (merged.response_a != merged.response_c).mean() > 0.5
