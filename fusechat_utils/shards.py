"""Shards, resumable chunk files and the merge for 02_sampling; the commit helpers 03 and 07 resume with.

Usage: `write_chunk(dir, rows)`, `done_units(dir)`, `merge_shards(step_dir, n)`; `resume_guard(dir, values,
"params.json")` before committing work into `dir` (02's chunks, 03_scoring's blocks, 07_eval's (stage, benchmark)
parts), each piece written with `write_parquet_atomic` or `io.write_json`; `split_contiguous(costs, n)` to share
a step's commit units among n shard jobs, `parse_shard("1/3")`, `shard_count(step_dir)`, `unfinished(step_dir, n)`.

A shard job (`fusechat run --shard i/N`, `fusechat_utils/shard_jobs.py`) writes only under its own
`<step>/chunks/shard-<i>-of-<N>/` and, once its share is committed, its manifest `shard.json` there: no file is
written by two jobs. Layout under `<run_dir>/02_sampling/`:
  chunks/shard-<i>-of-<n>/expected.parquet   the (prompt_id, source_model, n_samples) units this shard owes
  chunks/shard-<i>-of-<n>/<source>-<k>.parquet one committed batch of responses (written tmp + os.replace);
                                              <source>@r<p>-<k>.parquet: replica p's (sample_devices)
  chunks/shard-<i>-of-<n>/shard.json          the shard job's manifest, written when its share is complete
  responses.parquet                           the merged, deduplicated, complete result
Imports only pandas/pyarrow, the standard library and fusechat_utils.io: the vLLM worker venv uses it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path

import pandas as pd

from fusechat_utils.errors import UserError
from fusechat_utils.io import read_json, write_json  # stdlib only: fine in the vLLM worker venv

COLUMNS = ["prompt_id", "dataset", "category", "source_model", "sample_index", "seed", "response", "finish_reason",
           "n_tokens"]
KEY = ["prompt_id", "source_model", "sample_index"]
EXPECTED = "expected.parquet"
SHARD_MANIFEST = "shard.json"
SHARD_NAME = re.compile(r"shard-(\d+)-of-(\d+)")  # not `shard-0-of-3.stale-<time>`: a folder set aside


class ShardError(UserError, ValueError):
    """A shard spec, layout or merge the user can fix; the message names the shard(s) and the folder."""


def shard_of(prompt_id: str, num_shards: int) -> int:
    """Stable shard of a prompt: sha256 of its id modulo num_shards (independent of row order and Python hash seed)."""
    digest = hashlib.sha256(str(prompt_id).encode("utf-8")).hexdigest()
    return int(digest[:16], 16) % num_shards


def shard_dir(step_dir: str | Path, shard_index: int, num_shards: int) -> Path:
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"sample_shard_index {shard_index} must be in [0, {num_shards})")
    return Path(step_dir) / "chunks" / f"shard-{shard_index}-of-{num_shards}"


def parse_shard(spec: str) -> tuple[int, int]:
    """'1/3' -> (1, 3): shard 1 of 3, counted from 0."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if not found or not 0 <= int(found[1]) < int(found[2]):
        raise ShardError(f"--shard {spec!r}: expected I/N with 0 <= I < N, e.g. 0/4 (shard I of N, counted from 0)")
    return int(found[1]), int(found[2])


def split_contiguous(costs: list[float], num_shards: int) -> list[int]:
    """The shard of each commit unit, in their order: consecutive runs of about equal total cost, one per shard (a
    unit goes where the midpoint of its cost falls). Consecutive, so a shard of 02 loads few of the sources."""
    total = float(sum(costs))
    out, before = [], 0.0
    for k, cost in enumerate(costs):
        share = (before + cost / 2) / total if total > 0 else (k + 0.5) / len(costs)
        out.append(min(num_shards - 1, int(num_shards * share)))
        before += cost
    return out


def shard_counts(step_dir: str | Path) -> set[int]:
    """Every N of the `chunks/shard-<i>-of-<N>` folders under a step folder (1: a one-process run's)."""
    folder = Path(step_dir) / "chunks"
    found = (SHARD_NAME.fullmatch(d.name) for d in folder.iterdir()) if folder.is_dir() else ()
    return {int(m[2]) for m in found if m}


def shard_count(step_dir: str | Path) -> int | None:
    """N of the job array whose shards are under this step folder (N > 1), or None when there is none."""
    counts = sorted(shard_counts(step_dir) - {1})
    if len(counts) > 1:
        raise ShardError(f"{Path(step_dir) / 'chunks'}: shards of {' and of '.join(map(str, counts))} jobs "
                         f"(shard-<i>-of-<N> folders); move the set you do not want aside, then merge")
    return counts[0] if counts else None


def unfinished(step_dir: str | Path, num_shards: int) -> list[int]:
    """Shards whose job has not written its manifest (never ran, still running, or failed)."""
    return [i for i in range(num_shards) if not (shard_dir(step_dir, i, num_shards) / SHARD_MANIFEST).is_file()]


def require_finished(step_dir: str | Path, num_shards: int) -> list[dict]:
    """The manifests of all shards, or a ShardError naming those that have not finished (no partial merge)."""
    missing = unfinished(step_dir, num_shards)
    if missing:
        raise ShardError(f"{step_dir}: shard(s) {missing} of {num_shards} have not finished (no {SHARD_MANIFEST} in "
                         f"chunks/shard-<i>-of-{num_shards}/); run them (`fusechat run ... --shard "
                         f"{missing[0]}/{num_shards}`) and the last one merges, or move {Path(step_dir) / 'chunks'} "
                         "aside to run the step in one process")
    return [read_json(shard_dir(step_dir, i, num_shards) / SHARD_MANIFEST) for i in range(num_shards)]


def write_shard_manifest(folder: str | Path, record: dict) -> Path:
    """The shard's share is committed: what ran, with which params, where and how long (read by the merge)."""
    return write_json(Path(folder) / SHARD_MANIFEST, record)


def check_shard_values(folder: Path, values: dict, file_name: str) -> None:
    """A shard's committed work is merged only under the values this run has (params and input hashes)."""
    wanted = json.loads(json.dumps(values, sort_keys=True, default=str))
    had = json.loads((folder / file_name).read_text()) if (folder / file_name).is_file() else {}
    changed = sorted(k for k in set(had) | set(wanted) if had.get(k) != wanted.get(k))
    if changed:
        raise ShardError(f"{folder}: this shard was computed with other values of {', '.join(changed)} than this "
                         f"run has; rerun the shards with this run's params, or move {folder.parent} aside")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def to_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    # nullable ints: reference responses kept from the prompt data have no seed and no token count
    for col in ("sample_index", "seed", "n_tokens"):
        df[col] = df[col].astype("Int64")
    return df


def write_parquet_atomic(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def resume_guard(folder: str | Path, values: dict, file_name: str, *, inputs: tuple[str, ...] = (),
                 what: str = "committed chunks") -> Path:
    """Resume the work committed in `folder` only under the values it was computed with (`folder/file_name`).

    A changed param is an error naming the keys, and nothing is touched. When only `inputs` changed (hashes of
    upstream artifacts: a rerun upstream step), the committed work is stale rather than mistaken: the folder is
    moved aside to `<folder>.stale-<time>` (never deleted) and a fresh one started. Returns the folder.
    """
    folder = Path(folder)
    wanted = json.loads(json.dumps(values, sort_keys=True, default=str))
    path = folder / file_name
    if path.exists():
        had = json.loads(path.read_text())
        changed = sorted(k for k in set(had) | set(wanted) if had.get(k) != wanted.get(k))
        if not changed:
            return folder
        params = [k for k in changed if k not in inputs]
        if params:
            was = ", ".join(f"{k}={had.get(k)!r}" for k in params)
            now = ", ".join(f"{k}={wanted.get(k)!r}" for k in params)
            raise ValueError(f"{folder}: its {what} were computed with {was}; this run has {now}. Move or delete "
                             "that folder to start again with the new values (nothing was changed)")
        stamp, n = time.strftime("%Y%m%d-%H%M%S"), 0
        stale = folder.with_name(f"{folder.name}.stale-{stamp}")
        while stale.exists():
            n += 1
            stale = folder.with_name(f"{folder.name}.stale-{stamp}-{n}")
        os.replace(folder, stale)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, wanted)
    return folder


def chunk_stem(source: str, part: int = 0) -> str:
    """File name stem of one writer's chunks: the source, and for a replica other than the first its part
    (`<source>@r<part>`; `@` is never in a source's safe name), so concurrent replicas never take one name."""
    return _safe(source) if part == 0 else f"{_safe(source)}@r{part}"


def write_chunk(chunk_dir: str | Path, source: str, rows: list[dict], part: int = 0) -> Path:
    """Commit one batch of responses; the next free number of this source's replica `part` (one writer each), so
    chunks are append-only."""
    chunk_dir = Path(chunk_dir)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    stem = chunk_stem(source, part)
    k = len(list(chunk_dir.glob(f"{stem}-*.parquet")))
    return write_parquet_atomic(chunk_dir / f"{stem}-{k:06d}.parquet", to_frame(rows))


def write_timing(chunk_dir: str | Path, backend: str, source: str, seconds: float, part: int = 0) -> None:
    """Generation seconds of the last run for one source (replica), model loading excluded."""
    write_json(Path(chunk_dir) / f".timing-{backend}-{chunk_stem(source, part)}.json",
               {"backend": backend, "source": source, "generate_s": seconds})


def read_chunks(chunk_dir: str | Path) -> pd.DataFrame:
    files = sorted(p for p in Path(chunk_dir).glob("*.parquet") if p.name != EXPECTED)
    if not files:
        return to_frame([])
    return pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)


def done_units(chunk_dir: str | Path) -> set[tuple[str, str]]:
    """(prompt_id, source_model) units with at least one committed row; a batch is committed whole or not at all."""
    df = read_chunks(chunk_dir)
    return set(zip(df["prompt_id"], df["source_model"], strict=True))


def merge_shards(step_dir: str | Path, out_name: str = "responses.parquet", num_shards: int | None = None) -> Path:
    """Merge every shard's chunks into `responses.parquet`: dedupe by (prompt_id, source_model, sample_index),
    then check that each shard has all the samples of every unit it owes and that no shard is missing.
    `num_shards` picks the shard set when the folder holds more than one (default: the only one there)."""
    step_dir = Path(step_dir)
    counts = shard_counts(step_dir)
    if num_shards is None:
        if not counts:
            raise FileNotFoundError(f"{step_dir}/chunks: no shard folders to merge")
        if len(counts) != 1:
            raise ValueError(f"{step_dir}/chunks: shards from different sample_num_shards {sorted(counts)}")
        num_shards = counts.pop()
    n = num_shards
    missing = [i for i in range(n) if not (shard_dir(step_dir, i, n) / EXPECTED).exists()]
    if missing:
        raise ValueError(f"{step_dir}: shard(s) {missing} of {n} have not been sampled yet")
    parts = []
    for i in range(n):
        folder = shard_dir(step_dir, i, n)
        rows = read_chunks(folder).drop_duplicates(subset=KEY, keep="first")
        check_complete(rows, pd.read_parquet(folder / EXPECTED), where=str(folder))
        parts.append(rows)
    rows = pd.concat(parts, ignore_index=True).drop_duplicates(subset=KEY, keep="first")
    rows = rows.sort_values(KEY, kind="stable").reset_index(drop=True)
    return write_parquet_atomic(step_dir / out_name, to_frame(rows.to_dict("records")))


def check_complete(rows: pd.DataFrame, expected: pd.DataFrame, where: str) -> None:
    got = rows.groupby(["prompt_id", "source_model"])["sample_index"].nunique()
    want = expected.set_index(["prompt_id", "source_model"])["n_samples"]
    have = got.reindex(want.index).fillna(0).astype(int)
    short = have[have < want]
    if len(short):
        (pid, src), k = short.index[0], short.iloc[0]
        raise ValueError(f"{where}: {len(short)} incomplete unit(s), e.g. prompt_id {pid} / {src} has {k} of "
                         f"{want.loc[(pid, src)]} samples; rerun the shard to resume")
