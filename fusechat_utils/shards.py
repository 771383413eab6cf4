"""Shards, resumable chunk files and the final merge for 02_sampling; the commit helpers 03 and 07 resume with.

Usage: `shard_of(prompt_id, 4)`, `write_chunk(dir, rows)`, `done_units(dir)`, `merge_shards(step_dir)`;
`resume_guard(dir, values, "params.json")` before committing work into `dir` (02's chunks, 03_scoring's
blocks, 07_eval's (stage, benchmark) parts), each piece written with `write_parquet_atomic` or `io.write_json`.

Layout under `<run_dir>/02_sampling/`:
  chunks/shard-<i>-of-<n>/expected.parquet   the (prompt_id, source_model, n_samples) units this shard owes
  chunks/shard-<i>-of-<n>/<source>-<k>.parquet one committed batch of responses (written tmp + os.replace)
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

from fusechat_utils.io import write_json  # stdlib only: fine in the vLLM worker venv

COLUMNS = ["prompt_id", "dataset", "category", "source_model", "sample_index", "seed", "response", "finish_reason",
           "n_tokens"]
KEY = ["prompt_id", "source_model", "sample_index"]
EXPECTED = "expected.parquet"


def shard_of(prompt_id: str, num_shards: int) -> int:
    """Stable shard of a prompt: sha256 of its id modulo num_shards (independent of row order and Python hash seed)."""
    digest = hashlib.sha256(str(prompt_id).encode("utf-8")).hexdigest()
    return int(digest[:16], 16) % num_shards


def shard_dir(step_dir: str | Path, shard_index: int, num_shards: int) -> Path:
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"sample_shard_index {shard_index} must be in [0, {num_shards})")
    return Path(step_dir) / "chunks" / f"shard-{shard_index}-of-{num_shards}"


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


def write_chunk(chunk_dir: str | Path, source: str, rows: list[dict]) -> Path:
    """Commit one batch of responses; the next free number for this source, so chunks are append-only."""
    chunk_dir = Path(chunk_dir)
    chunk_dir.mkdir(parents=True, exist_ok=True)
    stem = _safe(source)
    k = len(list(chunk_dir.glob(f"{stem}-*.parquet")))
    return write_parquet_atomic(chunk_dir / f"{stem}-{k:06d}.parquet", to_frame(rows))


def write_timing(chunk_dir: str | Path, backend: str, source: str, seconds: float) -> None:
    """Generation seconds of the last run for one source (model loading excluded), read by the benchmark."""
    write_json(Path(chunk_dir) / f".timing-{backend}-{_safe(source)}.json",
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


def merge_shards(step_dir: str | Path, out_name: str = "responses.parquet") -> Path:
    """Merge every shard's chunks into `responses.parquet`: dedupe by (prompt_id, source_model, sample_index),
    then check that each expected unit has all its samples and that no shard is missing."""
    step_dir = Path(step_dir)
    dirs = sorted((step_dir / "chunks").glob("shard-*-of-*"))
    if not dirs:
        raise FileNotFoundError(f"{step_dir}/chunks: no shard folders to merge")
    num_shards = {int(d.name.rsplit("-", 1)[1]) for d in dirs}
    if len(num_shards) != 1:
        raise ValueError(f"{step_dir}/chunks: shards from different sample_num_shards {sorted(num_shards)}")
    n = num_shards.pop()
    missing = [i for i in range(n) if not (shard_dir(step_dir, i, n) / EXPECTED).exists()]
    if missing:
        raise ValueError(f"{step_dir}: shard(s) {missing} of {n} have not been sampled yet")
    expected = pd.concat([pd.read_parquet(shard_dir(step_dir, i, n) / EXPECTED) for i in range(n)], ignore_index=True)
    rows = pd.concat([read_chunks(shard_dir(step_dir, i, n)) for i in range(n)], ignore_index=True)
    rows = rows.drop_duplicates(subset=KEY, keep="first")
    check_complete(rows, expected, where=str(step_dir))
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
