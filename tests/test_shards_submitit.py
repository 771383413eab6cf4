"""Shards of 02/03/07 as separate jobs through submitit: the one-process run's rows, no partial merge, Slurm arrays.

The slow tests run the toy profile at tiny counts: 3 concurrent local submitit jobs per step, a shard that dies
mid-way, the merge. The fast ones check 07's shards on a tiny eval world, the shard arithmetic, the Slurm
submission (a fake sbatch records what submitit hands it) and the CLI's errors.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import threading
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from eval_world import build_models, write_toy_benchmarks
from fusechat_utils import sampling, shard_jobs, shards
from fusechat_utils.cli import main
from fusechat_utils.evaluation import EvalConfig, runners
from fusechat_utils.evaluation import run as run_eval
from fusechat_utils.io import read_json
from fusechat_utils.runlock import run_lock
from fusechat_utils.runner import run_pipeline
from fusechat_utils.sampling import SampleConfig
from fusechat_utils.shards import ShardError
from fusechat_utils.submit import Resources, submit

# The toy profile at tiny counts: ~15 prompts, 3 of the 4 sources, batches of 2 (so every shard owns several).
TINY = {
    "prompts_max_per_dataset": {"UltraFeedback": 2, "Magpie-Pro-DPO-100K-v0.1": 2, "HelpSteer2": 2,
                                "OpenMathInstruct-2": 2, "leetcode": 1, "self-oss-instruct-sc2-exec-filter-50k": 2,
                                "alpaca_gpt4_zh": 2, "Magpie-Qwen2-Pro-200K-Chinese": 2},
    "sample_general_sources": ["src-llama", "src-qwen2"], "sample_code_sources": ["src-gemma2"],
    "sample_math_sources": ["src-llama"], "sample_chinese_sources": ["src-qwen2"],
    "sample_n_general": 1, "sample_n_code": 1, "sample_n_math": 2, "sample_max_new_tokens": 8,
    "sample_batch_size": 2, "sample_workers": 1, "score_chunk_size": 8,
}


def quiet(*args, **kwargs):
    pass


def tiny(run_dir: Path) -> dict:
    return {**TINY, "run_dir": str(run_dir)}


def sorted_rows(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(shards.KEY).reset_index(drop=True)


def units_of(folder: Path) -> set[tuple[str, str]]:
    return set(zip(*(pd.read_parquet(folder / shards.EXPECTED)[c] for c in ("prompt_id", "source_model")),
                   strict=True))


@pytest.fixture(scope="module")
def one_process(toy_world, tmp_path_factory):
    """01-03 of the tiny toy run in one process, the reference every sharded run must equal."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    assert [r.status for r in run_pipeline("toy", "01-03", tiny(run_dir), log=quiet)] == ["ran"] * 3
    return run_dir


def start_run(root: Path, one: Path) -> Path:
    """A run folder with 01 done (copied from the one-process run: the same step)."""
    run_dir = root / "run"
    assert [r.status for r in run_pipeline("toy", "01", tiny(run_dir), log=quiet)] == ["reused"]
    return run_dir


@pytest.mark.slow
def test_three_local_jobs_per_step_give_the_rows_of_one_process(one_process, tmp_path):
    run_dir = start_run(tmp_path, one_process)
    lines = []
    jobs = submit("toy", "02-03", 3, tiny(run_dir), executor="local", log=lambda line, **_: lines.append(line))
    assert [len(j) for j in jobs.values()] == [3, 3] and all(j.state == "FINISHED" for js in jobs.values() for j in js)
    for step, out in (("02_sampling", "responses.parquet"), ("03_scoring", "scored.parquet")):
        pd.testing.assert_frame_equal(sorted_rows(run_dir / step / out), sorted_rows(one_process / step / out))
        records = [read_json(shards.shard_dir(run_dir / step, i, 3) / shards.SHARD_MANIFEST) for i in range(3)]
        assert [r["shard"] for r in records] == [0, 1, 2] and len({r["pid"] for r in records}) == 3
        assert read_json(run_dir / step / "manifest.json")["merged_shards"] == 3
        print(step, "shard wall s:", [r["wall_time_s"] for r in records])

    # every unit sampled by exactly one shard, each shard with work of its own
    owned = [units_of(shards.shard_dir(run_dir / "02_sampling", i, 3)) for i in range(3)]
    assert all(owned) and sum(map(len, owned)) == len(set().union(*owned))
    assert set().union(*owned) == units_of(shards.shard_dir(one_process / "02_sampling", 0, 1))
    # the merged step is the one-process step: same fingerprint, and a later run skips it
    fingerprint = [read_json(d / "02_sampling" / "manifest.json")["fingerprint"] for d in (run_dir, one_process)]
    assert fingerprint[0] == fingerprint[1]
    assert [r.status for r in run_pipeline("toy", "01-03", tiny(run_dir), log=quiet)] == ["skipped"] * 3


def dying_shard(profile, step, shard, overrides, run_name):
    """Shard 1's job dies (os._exit) right after its first sampled batch is committed; the others run as usual."""
    if shard == "1/3":
        real = shards.write_chunk

        def write_then_die(chunk_dir, source, rows):
            path = real(chunk_dir, source, rows)
            if source != sampling.REFERENCE_MODEL:
                os._exit(9)
            return path

        shards.write_chunk = write_then_die
    return shard_jobs.run_shard(profile, step, shard, overrides, run_name)


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job processes cannot import this test module


@pytest.mark.slow
def test_a_dead_shard_keeps_the_others_work_and_the_merge_waits_for_it(one_process, tmp_path, capsys):
    run_dir = start_run(tmp_path, one_process)
    step_dir = run_dir / "02_sampling"
    with pytest.raises(ShardError, match=r"02_sampling: 1 of 3 shard job\(s\) failed[\s\S]*shard 1:"):
        submit("toy", "02", 3, tiny(run_dir), executor="local", log=quiet, task=dying_shard)
    folders = [shards.shard_dir(step_dir, i, 3) for i in range(3)]
    assert [(f / shards.SHARD_MANIFEST).is_file() for f in folders] == [True, False, True]
    (committed,) = [p for p in folders[1].glob("src-*.parquet")]  # the dead shard's one batch is kept
    before = (committed.stat().st_ino, committed.stat().st_mtime_ns, committed.read_bytes())
    assert not (step_dir / "responses.parquet").exists() and not (step_dir / "manifest.json").exists()

    assert main(["merge", "--run-dir", str(run_dir), "--step", "02"]) == 1
    assert "shard(s) [1] of 3 have not finished" in capsys.readouterr().err
    assert not (step_dir / "responses.parquet").exists()

    # shard 1 again, as its own job would: it resumes after its committed batch and, the last to finish, merges
    sets = [a for k, v in tiny(run_dir).items() for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main(["run", "--profile", "toy", "--steps", "02", "--shard", "1/3", *sets]) == 0
    assert (committed.stat().st_ino, committed.stat().st_mtime_ns, committed.read_bytes()) == before
    assert read_json(folders[1] / shards.SHARD_MANIFEST)["summary"]["resumed_units"] > 0
    pd.testing.assert_frame_equal(sorted_rows(step_dir / "responses.parquet"),
                                  sorted_rows(one_process / "02_sampling" / "responses.parquet"))
    assert read_json(step_dir / "manifest.json")["merged_shards"] == 3


# ---------------------------------------------------------------------------------------------------- fast tests


@pytest.fixture(scope="module")
def eval_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalworld")
    paths = build_models(root)
    paths["bench"] = write_toy_benchmarks(root / "bench")
    return paths


def eval_run(run_dir: Path, paths: dict) -> EvalConfig:
    shutil.copytree(paths["target"], run_dir / "05_sft" / "model")  # stages base and sft: 4 parts
    return EvalConfig(run_dir=str(run_dir), target_model=paths["target"], eval_toy_benchmarks_dir=paths["bench"],
                      eval_reward_model=paths["reward"], eval_limit=2, eval_max_tokens_cap=8, eval_max_new_tokens=4,
                      eval_benchmarks=["toy", "HumanEval"])


def eval_outputs(run_dir: Path) -> dict[str, bytes]:
    step = run_dir / "07_eval"  # the stages' model paths name the run folder
    return {p.relative_to(step).as_posix(): p.read_bytes().replace(str(run_dir).encode(), b"RUN")
            for p in sorted(step.rglob("*")) if p.is_file() and p.name != "eval_settings.json"
            and p.relative_to(step).parts[0] != "chunks"}


def test_eval_parts_from_three_shards_give_the_one_process_results(eval_world, tmp_path, monkeypatch):
    full = eval_run(tmp_path / "full", eval_world)
    run_eval(full)
    cfg = eval_run(tmp_path / "sharded", eval_world)
    done = [runners.run_shard(cfg, i, 3)["parts"] for i in range(3)]
    assert done == [["base/toy"], ["base/HumanEval", "sft/toy"], ["sft/HumanEval"]]
    with pytest.raises(ShardError, match=r"shard\(s\) \[0, 1, 2\] of 3 have not finished"):
        run_eval(cfg)  # the shard jobs' manifests are missing: their work may not be complete
    for i in (0, 2):
        shards.write_shard_manifest(shards.shard_dir(cfg.step_dir, i, 3), {"shard": i})
    with pytest.raises(ShardError, match=r"shard\(s\) \[1\] of 3 have not finished"):
        run_eval(cfg)
    shards.write_shard_manifest(shards.shard_dir(cfg.step_dir, 1, 3), {"shard": 1})
    ran = []
    monkeypatch.setattr(runners, "run_benchmark", lambda *args: ran.append(args[1:3]))
    run_eval(cfg)
    assert ran == []  # every part came from the shards
    assert eval_outputs(tmp_path / "sharded") == eval_outputs(tmp_path / "full")




def test_parse_shard_takes_i_of_n_from_zero():
    assert shards.parse_shard("1/3") == (1, 3) and shards.parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("3/3", "1", "a/3", "-1/2", "1/0"):
        with pytest.raises(ShardError, match=r"--shard .*expected I/N"):
            shards.parse_shard(bad)


def test_split_contiguous_gives_consecutive_runs_of_about_equal_cost():
    costs = [4, 4, 6, 4, 6, 2, 1, 1, 8, 3]
    owner = shards.split_contiguous(costs, 3)
    assert owner == sorted(owner) and set(owner) == {0, 1, 2}
    per_shard = [sum(c for c, o in zip(costs, owner) if o == i) for i in range(3)]
    assert max(per_shard) - min(per_shard) <= max(costs)
    assert shards.split_contiguous([1, 1], 4) == [1, 3]  # more shards than units: some get nothing


def test_shards_own_whole_batches_of_the_one_process_run():
    cats = ["general", "code", "math", "chinese"]
    prompts = pd.DataFrame({"prompt_id": [f"p{i:02d}" for i in range(23)], "dataset": "d",
                            "category": [cats[i % 4] for i in range(23)], "prompt": "hi"})
    cfg = SampleConfig(sample_batch_size=3)
    whole = [tuple(zip(b.prompt_id, b.source_model)) for b in sampling.batches(sampling.plan_units(cfg, prompts), 3)]
    got = []
    for i in range(4):
        units = sampling.plan_units(SampleConfig(sample_batch_size=3, sample_shard_index=i, sample_num_shards=4),
                                    prompts)
        assert len(units)
        for _, group in units.groupby("source_model", sort=False):  # how run() cuts a shard's batches
            got += [tuple(zip(b.prompt_id, b.source_model)) for b in sampling.batches(group, 3)]
    assert sorted(got) == sorted(whole)


def fake_slurm(bin_dir: Path, record: Path) -> None:
    """`sbatch` that keeps each script it is given and answers with job ids 4242, 4243, ...; `srun` to be found."""
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"""#!/bin/bash
n=$(ls {record} | wc -l); cp "${{@: -1}}" {record}/$n.sh; echo "Submitted batch job $((4242 + n))"
""")
    (bin_dir / "srun").write_text("#!/bin/bash\nexit 0\n")
    for name in ("sbatch", "srun"):
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)


def test_slurm_gets_one_array_per_step_chained_by_afterok(tmp_path, monkeypatch):
    record = tmp_path / "sbatch"
    record.mkdir()
    fake_slurm(tmp_path / "bin", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    models = tmp_path / "model"  # any existing folder: the jobs never start
    models.mkdir()
    sources = [{**s, "model": str(models)} for s in sampling.TOY_SOURCES]
    overrides = {"run_dir": str(tmp_path / "run"), "sample_sources": sources, "score_reward_model": str(models)}
    resources = Resources(timeout_min=600, gpus_per_task=4, cpus_per_task=16, slurm_partition="gpu",
                          array_parallelism=2, slurm_params={"constraint": "h100"}, setup=["module load cuda"])
    jobs = submit("toy", "02-03", 3, overrides, resources=resources, log=quiet)
    assert [j.job_id for j in jobs["02_sampling"]] == ["4242_0", "4242_1", "4242_2"]
    first, second = (record / "0.sh").read_text(), (record / "1.sh").read_text()
    for script in (first, second):
        for line in ("#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=4",
                     "#SBATCH --cpus-per-task=16", "#SBATCH --time=600", "#SBATCH --constraint=h100",
                     "module load cuda"):
            assert line in script
    assert "--dependency" not in first
    assert "#SBATCH --dependency=afterok:4242" in second and "#SBATCH --kill-on-invalid-dep=yes" in second
    assert "fusechat-03_scoring" in second and str(tmp_path / "run" / "submitit" / "03_scoring") in second


def test_cli_refuses_shards_of_steps_that_cannot_be_sharded(capsys):
    assert main(["run", "--profile", "toy", "--steps", "04", "--shard", "0/2"]) == 1
    assert "shards run one step at a time, one of 02_sampling, 03_scoring, 07_eval" in capsys.readouterr().err
    assert main(["run", "--profile", "toy", "--steps", "02-03", "--shard", "0/2"]) == 1
    assert "--steps '02-03' selects 02_sampling, 03_scoring" in capsys.readouterr().err
    assert main(["submit", "--profile", "toy", "--steps", "03-05", "--shards", "2"]) == 1
    assert "04_pairs, 05_sft cannot be sharded" in capsys.readouterr().err


def test_merging_without_shards_or_with_a_missing_one_names_it(tmp_path, capsys):
    step_dir = tmp_path / "03_scoring"
    assert main(["merge", "--run-dir", str(tmp_path), "--step", "03"]) == 1
    assert "no shards of a job array to merge" in capsys.readouterr().err
    for i in (0, 2):
        shards.write_shard_manifest(shards.shard_dir(step_dir, i, 3), {"shard": i})
    assert main(["merge", "--run-dir", str(tmp_path), "--step", "03_scoring"]) == 1
    assert "shard(s) [1] of 3 have not finished" in capsys.readouterr().err
    shards.shard_dir(step_dir, 0, 2).mkdir(parents=True)
    with pytest.raises(ShardError, match="shards of 2 and of 3 jobs"):
        shards.shard_count(step_dir)


@pytest.mark.slow
def test_a_merge_waits_for_the_run_lock_and_gives_up_after_its_limit(tmp_path):
    waited, got = [], []

    def merge_when_free():
        with shard_jobs.run_lock_waiting(tmp_path, 30, log=lambda line, **_: waited.append(line)):
            got.append("locked")

    with run_lock(tmp_path):
        with pytest.raises(ShardError, match="not merged: .* is being written by another run"):
            with shard_jobs.run_lock_waiting(tmp_path, 0.5, log=quiet):
                pass
        thread = threading.Thread(target=merge_when_free)
        thread.start()
        thread.join(3)
        assert got == [] and waited  # still waiting, and said why
    thread.join(10)
    assert got == ["locked"]  # took the lock once it was freed
