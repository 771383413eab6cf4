"""One shard of 02_sampling, 03_scoring or 07_eval as a job of its own, and the merge of the finished shards.

Usage: `fusechat run --profile P --steps 02 --shard 1/4` (one job of an array; `fusechat submit` starts them all),
`fusechat merge --run-dir outputs/P --step 02`; from Python `run_shard("toy", "02", "1/4")`,
`merge("outputs/toy", "02")`.

A shard does its share of the one-process run's commit units (02: batches, `sampling.plan_units`; 03: blocks of
scored rows, `scoring.run_shard`; 07: (stage, benchmark) parts, `runners.run_shard`) and writes only under
`<step>/chunks/shard-<i>-of-<N>/`: its chunks, then its manifest `shard.json` (params, summary, host, job ids,
times). Its own lock (`<step>/.shard-locks/`) keeps a second copy of the same shard out; shards never take the run
folder's lock. The shard that finds every manifest present merges: under the run folder's lock (waiting while
another process holds it) the runner runs the step's notebook with the shards' params, and the step reads the
shards' committed work instead of computing it (each shard checked against the run's params and inputs). Since
the shards did exactly the one-process run's work, the merged step has its fingerprint: a later `fusechat run`
skips it. Two shards finishing at once both try; the second gets the lock after the first and finds the step done.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fusechat_utils import shards
from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.shards import ShardError

SHARDABLE = ("02_sampling", "03_scoring", "07_eval")
MERGE_WAIT_S = 3600  # a merge waits this long for the run folder's lock (another merge, or a whole run)
JOB_ENV = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURMD_NODENAME", "SUBMITIT_LOCAL_JOB_ID")


def shard_step(steps: str | None) -> str:
    """The one shardable step that `--steps` selects."""
    from fusechat_utils.steps import select_steps

    selected = select_steps(steps)
    if len(selected) != 1 or selected[0] not in SHARDABLE:
        raise ShardError(f"--steps {steps!r} selects {', '.join(selected)}; shards run one step at a time, one of "
                         f"{', '.join(SHARDABLE)}")
    return selected[0]


def step_is_done(step: str, params: dict[str, Any], run_dir: Path) -> bool:
    """The step's manifest holds this run's fingerprint and its outputs are as recorded (the runner's skip)."""
    from fusechat_utils.io import read_json
    from fusechat_utils.runner import MANIFEST, fingerprint_parts, stale_reason

    manifest = run_dir / step / MANIFEST
    return manifest.is_file() and stale_reason(read_json(manifest), fingerprint_parts(step, params, run_dir),
                                               run_dir / step) is None


def run_shard(profile: str, steps: str | None, shard: str, overrides: dict[str, Any] | None = None,
              run_name: str | None = None, log=print, merge_wait_s: float = MERGE_WAIT_S) -> dict:
    """Do shard `i/N` of the step, write its manifest, and merge if it is the last to finish; its manifest."""
    from fusechat_utils.runner import MANIFEST, resolve_run, step_params
    from fusechat_utils.steps import upstream_steps

    step = shard_step(steps)
    index, count = shards.parse_shard(shard)
    _, params, run_dir, meta = resolve_run(profile, step, overrides, run_name)
    values = step_params(step, params, params["run_dir"])
    if step == "02_sampling" and (values["sample_shard_index"], values["sample_num_shards"]) != (0, 1):
        raise ShardError("sample_shard_index / sample_num_shards are set by --shard: leave them at 0 / 1")
    step_dir = run_dir / step
    if step_is_done(step, values, run_dir):
        log(f"{step} is already complete in {run_dir}: shard {index}/{count} has nothing to do")
        return {"step": step, "shard": index, "num_shards": count, "status": "already complete"}
    for up in upstream_steps(step, values):  # finished shards nobody merged (a merge that timed out): merge them
        if not (run_dir / up / MANIFEST).is_file() and up in SHARDABLE and merge_ready(run_dir / up):
            merge(run_dir, up, log=log, wait_s=merge_wait_s)
    missing = [up for up in upstream_steps(step, values) if not (run_dir / up / MANIFEST).is_file()]
    if missing and step != "07_eval":  # 07 evaluates what exists (resolve_models)
        raise ShardError(f"{step} shard {index}/{count} reads the outputs of {', '.join(missing)}, which has not "
                         f"finished in {run_dir} (no {MANIFEST}): run it, or merge its shards, first")
    others = sorted(shards.shard_counts(step_dir) - {1, count})
    if others:
        raise ShardError(f"{step_dir / 'chunks'} holds shards of {others} jobs; this is shard {index}/{count}: move "
                         "the other set aside (or run its shards) first")
    started = time.time()
    with shard_lock(step_dir, index, count):
        log(f"{step} shard {index}/{count} -> {shards.shard_dir(step_dir, index, count)}", flush=True)
        try:
            summary = WORK[step](values, index, count)
        except (ValueError, FileNotFoundError) as err:  # the steps' errors about params and inputs
            traceback.print_exc()  # into the job's log
            raise ShardError(f"{step} shard {index}/{count} failed: {type(err).__name__}: {err}") from err
        record = {"step": step, "shard": index, "num_shards": count, "params": values, "meta": meta,
                  "summary": summary, "host": socket.gethostname(), "pid": os.getpid(),
                  "job": {k: os.environ[k] for k in JOB_ENV if k in os.environ},
                  "started_at": _iso(started), "finished_at": _iso(time.time()),
                  "wall_time_s": round(time.time() - started, 2)}
        shards.write_shard_manifest(shards.shard_dir(step_dir, index, count), record)
    log(f"{step} shard {index}/{count} done ({record['wall_time_s']:.1f} s)", flush=True)
    waiting = shards.unfinished(step_dir, count)
    if waiting:
        log(f"{step}: shard(s) {waiting} of {count} not finished yet; the last one to finish merges", flush=True)
    else:
        merge(run_dir, step, log=log, wait_s=merge_wait_s)
    return record


def merge(run_dir: str | Path, step: str, log=print, wait_s: float = MERGE_WAIT_S):
    """Merge the finished shards of a step under the run folder's lock; the runner's StepResult. A shard that
    has not finished is an error naming it (nothing is merged)."""
    from fusechat_utils.runner import run_step

    step = shard_step(step)
    run_dir = Path(run_dir).resolve()
    step_dir = run_dir / step
    count = shards.shard_count(step_dir)
    if count is None:
        raise ShardError(f"{step_dir / 'chunks'}: no shards of a job array to merge (shard-<i>-of-<N> folders)")
    params, meta = agreed_params(step_dir, shards.require_finished(step_dir, count))
    if (PROJECT_ROOT / params["run_dir"]).resolve() != run_dir:
        raise ShardError(f"{step_dir}: its shards ran for run_dir {params['run_dir']!r}, not this folder; merge "
                         "them where they ran")
    with run_lock_waiting(run_dir, wait_s, log):
        result = run_step(step, params, run_dir, False, {**meta, "merged_shards": count}, log, reuse_ok=False)
    log(f"{step} merged from {count} shards: {result.status} ({result.wall_time_s:.1f} s) -> {result.notebook}",
        flush=True)
    return result


def merge_ready(step_dir: Path) -> bool:
    """The step folder holds the shards of a job array, all finished."""
    count = shards.shard_count(step_dir)
    return bool(count) and not shards.unfinished(step_dir, count)


def agreed_params(step_dir: Path, records: list[dict]) -> tuple[dict, dict]:
    """The params and meta all shards ran with; shards run with other params are an error naming them."""
    params = records[0]["params"]
    for record in records[1:]:
        changed = sorted(k for k in set(params) | set(record["params"]) if params.get(k) != record["params"].get(k))
        if changed:
            raise ShardError(f"{step_dir}: shard {record['shard']} ran with other values of {', '.join(changed)} than "
                             "shard 0; rerun the shards with the same params, then merge")
    return params, max(records, key=lambda r: r["finished_at"])["meta"]


@contextmanager
def shard_lock(step_dir: Path, index: int, count: int):
    from fusechat_utils.runlock import RunLocked, run_lock

    try:
        with ExitStack() as stack:
            stack.enter_context(run_lock(step_dir / ".shard-locks" / f"shard-{index}-of-{count}"))
            yield
    except RunLocked as err:
        raise ShardError(f"{step_dir.name} shard {index}/{count} is already running elsewhere: {err}") from None


@contextmanager
def run_lock_waiting(run_dir: Path, wait_s: float, log=print):
    """The run folder's lock, waiting (polling every 2 s) while another process holds it."""
    from fusechat_utils.runlock import RunLocked, run_lock

    deadline, stack, told = time.monotonic() + wait_s, ExitStack(), False
    while True:
        try:
            stack.enter_context(run_lock(run_dir))
            break
        except RunLocked as err:
            if time.monotonic() > deadline:
                raise ShardError(f"not merged: {err}; run `fusechat merge --run-dir {run_dir} --step ...` "
                                 "once it is free") from None
            if not told:
                log(f"waiting for the run folder's lock to merge: {err}", flush=True)
                told = True
            time.sleep(2)
    with stack:
        yield


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _sample(values: dict, index: int, count: int) -> dict:
    from fusechat_utils import sampling

    cfg = sampling.SampleConfig.from_params({**values, "sample_shard_index": index, "sample_num_shards": count})
    return sampling.run(cfg)


def _score(values: dict, index: int, count: int) -> dict:
    from fusechat_utils import scoring

    return scoring.run_shard(scoring.ScoreConfig.from_params(values), index, count)


def _evaluate(values: dict, index: int, count: int) -> dict:
    from fusechat_utils.evaluation import EvalConfig, runners

    return runners.run_shard(EvalConfig.from_params(values), index, count)


WORK = {"02_sampling": _sample, "03_scoring": _score, "07_eval": _evaluate}
