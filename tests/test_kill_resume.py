"""SIGKILL the whole runner (`python -m fusechat_utils run --profile toy`) at several points inside each of steps
01-07, resume each time, and compare every artifact with an uninterrupted run of the same seeds.

After every kill: each final-name file is complete (parquet/json/jsonl/csv parse; temporary `.name.*` files and
HF checkpoints, which transformers writes in place, are not final names). At the end: every artifact equals the
uninterrupted run's (content hashes; executed notebooks and manifests' timing/environment fields excepted), and
the committed chunks of 02, 03 and 07 seen before a kill were never rewritten (same inode and mtime).
Where a kill lands varies from run to run; what is asserted holds wherever it lands.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.io import read_jsonl
from fusechat_utils.steps import STEPS

CAPS = {"UltraFeedback": 3, "Magpie-Pro-DPO-100K-v0.1": 3, "HelpSteer2": 2, "OpenMathInstruct-2": 8, "leetcode": 2,
        "self-oss-instruct-sc2-exec-filter-50k": 6, "alpaca_gpt4_zh": 3, "Magpie-Qwen2-Pro-200K-Chinese": 3}
SMALL = {
    "prompts_max_per_dataset": json.dumps(CAPS),
    "sample_n_general": 2, "sample_n_code": 2, "sample_n_math": 2, "sample_max_new_tokens": 8,
    "sample_batch_size": 4,
    "score_chunk_size": 32, "score_batch_size": 16,
    "sft_max_steps": 6, "sft_save_steps": 2, "sft_global_batch_size": 4, "sft_per_device_train_batch_size": 4,
    "sft_logging_steps": 1,
    "dpo_max_steps": 4, "dpo_save_steps": 2, "dpo_global_batch_size": 2, "dpo_per_device_train_batch_size": 2,
    "dpo_logging_steps": 1,
    "eval_benchmarks": "[toy, HumanEval]", "eval_limit": 2, "eval_max_tokens_cap": 8, "eval_max_new_tokens": 8,
}
CHUNK_GLOBS = {"02_sampling": "chunks/shard-*/src-*.parquet", "03_scoring": "chunks/block-*.parquet",
               "07_eval": "parts/*/*.json"}
# fields of a manifest that differ between two identical runs
VOLATILE = {"wall_time_s", "finished_at", "started_at", "reused_from", "params", "run_name", "overrides", "inputs",
            "outputs", "outputs_hash", "fingerprint", "fingerprint_parts", "reason", "git_commit", "code_hash", "code"}


def small_benchmarks(folder: Path, per_family: int = 4) -> Path:
    folder.mkdir(parents=True)
    for path in sorted((PROJECT_ROOT / "outputs" / "toy_world" / "benchmarks").glob("*.jsonl")):
        (folder / path.name).write_text("".join(path.read_text().splitlines(keepends=True)[:per_family]))
    return folder


def start(run_dir: Path, bench: Path, cache: Path, log: Path) -> subprocess.Popen:
    sets = {**SMALL, "run_dir": str(run_dir), "eval_toy_benchmarks_dir": str(bench)}
    cmd = [sys.executable, "-m", "fusechat_utils", "run", "--profile", "toy"]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    env = {**os.environ, "FUSECHAT_STEP_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    with open(log, "a") as fh:
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def current_step(run_dir: Path) -> str:
    return next((s for s in STEPS if not (run_dir / s / "manifest.json").is_file()), "done")


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file() and ".timing" not in p.name] if folder.exists() else []


# Kill points, in pipeline order: (step, what to wait for). Each waits in a fresh (resumed) run.
def after(step: str, seconds: float):
    def hit(run_dir, since):
        return (run_dir / step).exists() and time.time() - since > seconds
    return hit


def chunks_at_least(step: str, n: int, or_temp: bool = False):
    def hit(run_dir, since):
        folder = run_dir / step
        return len(list(folder.glob(CHUNK_GLOBS[step]))) >= n or (or_temp and bool(temp_files(folder / "chunks")))
    return hit


def path_exists(rel: str):
    return lambda run_dir, since: (run_dir / rel).exists()


KILLS = [
    ("01_prompts", after("01_prompts", 2.0)),
    ("02_sampling", chunks_at_least("02_sampling", 1)),
    ("02_sampling", chunks_at_least("02_sampling", 4, or_temp=True)),  # often lands during a chunk's write
    ("02_sampling", chunks_at_least("02_sampling", 12)),
    ("03_scoring", chunks_at_least("03_scoring", 1)),
    ("03_scoring", chunks_at_least("03_scoring", 3, or_temp=True)),
    ("03_scoring", chunks_at_least("03_scoring", 5)),
    ("04_pairs", after("04_pairs", 1.0)),
    ("05_sft", path_exists("05_sft/checkpoints/checkpoint-2/trainer_state.json")),
    ("05_sft", path_exists("05_sft/checkpoints/checkpoint-4/trainer_state.json")),
    ("06_dpo", path_exists("06_dpo/checkpoints")),
    ("06_dpo", path_exists("06_dpo/checkpoints/checkpoint-2/trainer_state.json")),
    ("07_eval", chunks_at_least("07_eval", 1)),
    ("07_eval", chunks_at_least("07_eval", 3)),
]


def check_readable(run_dir: Path) -> None:
    """No half-written file under a final name, wherever the kill landed."""
    for path in run_dir.rglob("*"):
        rel = path.relative_to(run_dir).as_posix()
        if not path.is_file() or path.name.startswith(".") or "/checkpoints" in rel or ".stale-" in rel:
            continue
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            read_jsonl(path)
        elif path.suffix == ".csv":
            pd.read_csv(path)


def committed(run_dir: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for step, pattern in CHUNK_GLOBS.items():
        for path in (run_dir / step).glob(pattern):
            out[path.relative_to(run_dir).as_posix()] = (path.stat().st_ino, path.stat().st_mtime_ns)
            if step == "07_eval" and path.name != "model.json":  # a committed part's samples
                for name in json.loads(path.read_text())["samples"]:
                    sample = run_dir / step / "samples" / path.parent.name / f"{name}.jsonl"
                    out[sample.relative_to(run_dir).as_posix()] = (sample.stat().st_ino, sample.stat().st_mtime_ns)
    return out


def artifacts(run_dir: Path) -> dict[str, object]:
    """Every artifact's content, comparable across run folders (paths and timing fields taken out)."""
    out = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if not path.is_file() or path.suffix == ".ipynb" or "/checkpoints" in rel or ".stale-" in rel:
            continue
        if path.name.startswith(".") or "/." in rel or path.name == "training_args.bin":
            continue  # training_args.bin: a pickle of the trainer's settings, run-folder paths included
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            out[rel] = df.to_json(orient="split", default_handler=str)
            continue
        data = path.read_bytes().replace(str(run_dir).encode(), b"RUN")
        if path.name == "manifest.json":
            data = json.dumps({k: v for k, v in json.loads(data).items() if k not in VOLATILE}, sort_keys=True)
        elif path.name in ("metrics.json", "log_history.json", "eval_settings.json"):
            obj = json.loads(data)
            drop = ("wall_time_s", "train_runtime", "train_samples_per_second", "train_steps_per_second",
                    "peak_rss_mib", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "config")
            scrub = lambda o: ({k: scrub(v) for k, v in o.items() if k not in drop} if isinstance(o, dict)  # noqa
                               else [scrub(v) for v in o] if isinstance(o, list) else o)
            data = json.dumps(scrub(obj), sort_keys=True)
        out[rel] = data
    return out


@pytest.mark.slow
def test_sigkill_inside_every_step_then_resume_equals_the_uninterrupted_run(toy_world, tmp_path):
    bench = small_benchmarks(tmp_path / "bench")
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    started = time.time()
    ref = start(ref_dir, bench, tmp_path / "cache-ref", tmp_path / "reference.log")
    assert ref.wait(timeout=900) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    ref_s = time.time() - started

    landed: dict[str, list[str]] = {s: [] for s in STEPS}
    seen: dict[str, tuple[int, int]] = {}
    log = tmp_path / "killed.log"
    for step, hit in KILLS:
        proc, since = start(run_dir, bench, tmp_path / "cache-killed", log), time.time()
        while proc.poll() is None and not hit(run_dir, since):
            time.sleep(0.02)
        if proc.poll() is not None:  # finished before the kill point: nothing left to kill
            assert proc.returncode == 0, log.read_text()[-3000:]
            break
        where = current_step(run_dir)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        landed[where].append(step)
        check_readable(run_dir)
        seen.update(committed(run_dir))
    final = start(run_dir, bench, tmp_path / "cache-killed", log)
    assert final.wait(timeout=900) == 0, log.read_text()[-3000:]
    check_readable(run_dir)

    now = committed(run_dir)
    rewritten = sorted(k for k, v in seen.items() if now.get(k) != v)
    assert not rewritten, f"committed work redone after a resume: {rewritten}"
    want, got = artifacts(ref_dir), artifacts(run_dir)
    assert sorted(got) == sorted(want)
    differ = sorted(k for k in want if want[k] != got[k])
    assert not differ, f"artifacts differ from the uninterrupted run: {differ}"
    print(f"reference run {ref_s:.0f} s; kills landed per step: { {s: len(v) for s, v in landed.items()} }; "
          f"{len(seen)} committed chunks kept; total {time.time() - started:.0f} s")
    for step in ("02_sampling", "03_scoring", "07_eval"):
        assert landed[step], f"no kill landed inside {step}: {landed}"
