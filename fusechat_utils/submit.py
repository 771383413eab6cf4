"""Submit the shards of 02, 03 and 07 as job arrays through submitit: Slurm, or submitit's local executor.

Usage:
    fusechat submit --profile llama3.1-8b --steps 02-03 --shards 16 --slurm-partition gpu --gpus-per-task 8
    fusechat submit --profile toy --steps 02 --shards 3 --executor local      # the same jobs on this machine

One array per step; its task i runs shard i/N of the step (`shard_jobs.run_shard`, what `fusechat run --steps 02
--shard i/N` does) as a pickled call in this interpreter's environment, and the last task to finish merges. Steps
chain: on Slurm the next step's array starts only after the whole previous one succeeded (`--dependency=afterok`,
and `--kill-on-invalid-dep=yes` drops it if a task fails); locally, submit waits for each array before the next.
Every shard is submitted, finished ones too: a finished shard's job finds its work committed and only re-checks it.
Pickles and logs: <run_dir>/submitit/<step>/<job id>_<task>_log.{out,err}.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path
from typing import Any

from fusechat_utils.runner import MANIFEST
from fusechat_utils.shard_jobs import SHARDABLE, merge, run_shard
from fusechat_utils.shards import ShardError

EXECUTORS = ("slurm", "local")


@dataclasses.dataclass
class Resources:
    """What each task asks for; the slurm_* fields and `setup` apply on Slurm only."""

    timeout_min: int = 24 * 60
    gpus_per_task: int = 0
    cpus_per_task: int | None = None
    mem_gb: int | None = None
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    array_parallelism: int | None = None
    slurm_params: dict[str, str] = dataclasses.field(default_factory=dict)  # any other sbatch option
    setup: list[str] = dataclasses.field(default_factory=list)  # shell lines before the task (module load ...)


def submit(profile: str, steps: str | None, num_shards: int, overrides: dict[str, Any] | None = None,
           run_name: str | None = None, executor: str = "slurm", resources: Resources | None = None,
           wait: bool = False, log=print, task=run_shard) -> dict[str, list]:
    """Submit one array of `num_shards` tasks per selected step; {step: its submitit jobs}. Params are checked
    before anything is submitted. `task` is what each job calls (tests replace it)."""
    from fusechat_utils.runner import resolve_run, step_params
    from fusechat_utils.steps import select_steps

    if executor not in EXECUTORS:
        raise ShardError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if num_shards < 1:
        raise ShardError(f"--shards {num_shards}: expected at least 1")
    selected = select_steps(steps)
    wrong = [s for s in selected if s not in SHARDABLE]
    if wrong:
        raise ShardError(f"--steps {steps!r}: {', '.join(wrong)} cannot be sharded; submit runs "
                         f"{', '.join(SHARDABLE)} (run the others with `fusechat run`)")
    if executor == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise ShardError("--executor slurm: no sbatch/srun on PATH (not a Slurm login node?); --executor local runs "
                         "the same jobs on this machine")
    _, params, run_dir, _ = resolve_run(profile, steps, overrides, run_name)
    for step in selected:
        values = step_params(step, params, params["run_dir"])
        if step == "02_sampling" and (values["sample_shard_index"], values["sample_num_shards"]) != (0, 1):
            raise ShardError("sample_shard_index / sample_num_shards are set by the shards: leave them at 0 / 1")
    resources = resources or Resources()
    profile = str(Path(profile).resolve()) if Path(profile).is_dir() else profile  # the job may start elsewhere
    submitted, after = {}, None
    for step in selected:
        folder = run_dir / "submitit" / step
        args = [(profile, step, f"{i}/{num_shards}", dict(overrides or {}), run_name) for i in range(num_shards)]
        if executor == "local":
            jobs = submit_local(folder, resources, task, args)
        else:
            jobs = slurm_executor(folder, step, resources, after).map_array(task, *zip(*args))
            after = jobs[0].job_id.split("_")[0]  # the array's id: afterok on it waits for every task
        log(f"{step}: {num_shards} shard job(s) submitted ({executor}): {', '.join(j.job_id for j in jobs)}; "
            f"logs in {folder}", flush=True)
        submitted[step] = jobs
        if executor == "local" or wait:
            wait_for(step, jobs, log)
            if not (run_dir / step / MANIFEST).is_file():  # the last shard's merge did not happen (lock timeout)
                merge(run_dir, step, log=log)
    return submitted


def slurm_executor(folder: Path, step: str, resources: Resources, after: str | None):
    import submitit

    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    extra = dict(resources.slurm_params)
    if after:
        extra.setdefault("kill-on-invalid-dep", "yes")
    ex.update_parameters(
        name=f"fusechat-{step}", timeout_min=resources.timeout_min, cpus_per_task=resources.cpus_per_task,
        mem_gb=resources.mem_gb, slurm_partition=resources.slurm_partition, slurm_account=resources.slurm_account,
        slurm_qos=resources.slurm_qos, slurm_gpus_per_task=resources.gpus_per_task or None,
        slurm_array_parallelism=resources.array_parallelism, slurm_dependency=f"afterok:{after}" if after else None,
        slurm_setup=resources.setup or None, slurm_additional_parameters=extra or None)
    return ex


def submit_local(folder: Path, resources: Resources, task, args: list[tuple]) -> list:
    """Start every task at once on this machine; with GPUs, task i sees its own `gpus_per_task` of them."""
    import submitit

    ex = submitit.LocalExecutor(folder=folder)
    ex.update_parameters(timeout_min=resources.timeout_min)
    if "OMP_NUM_THREADS" not in os.environ:  # the tasks share this machine's cores: oversubscribed, torch crawls
        ex.update_parameters(setup=[f"export OMP_NUM_THREADS={max(1, (os.cpu_count() or 1) // len(args))}"])
    gpus = resources.gpus_per_task
    if not gpus:
        return ex.map_array(task, *zip(*args))
    jobs = []
    for i, arg in enumerate(args):
        ex.update_parameters(gpus_per_node=gpus, visible_gpus=list(range(i * gpus, (i + 1) * gpus)))
        jobs.append(ex.submit(task, *arg))
    return jobs


def wait_for(step: str, jobs: list, log=print) -> None:
    """Wait for every job of the array; a failed one is an error naming its shard and log (after all ended)."""
    for job in jobs:
        job.wait()
    failed = [(i, job) for i, job in enumerate(jobs) if job.exception() is not None]
    if failed:
        lines = [f"shard {i}: {why_failed(job.exception())} (log: {job.paths.stderr})" for i, job in failed]
        raise ShardError(f"{step}: {len(failed)} of {len(jobs)} shard job(s) failed; the others' work is kept and "
                         "nothing was merged. Rerun the failed ones (`fusechat run ... --shard I/N`, or submit "
                         "again):\n  " + "\n  ".join(lines))
    log(f"{step}: all {len(jobs)} shard jobs finished", flush=True)



def why_failed(error: Exception) -> str:
    """The exception line of a failed job's traceback, or what a job that left no result probably met."""
    raised = [line for line in str(error).splitlines() if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line)]
    return raised[-1][:300] if raised else "ended without a result (killed, out of memory or out of time?)"
