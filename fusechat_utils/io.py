"""Files: atomic writes, JSON/JSONL, content hashes, seeding. Every artifact of a step goes through here."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fusechat_utils.errors import UserError

# Files above this size are fingerprinted by (size, mtime) instead of content: hashing a 16 GB checkpoint on
# every run would cost minutes for no benefit, and such files are written once by a step.
HASH_CONTENT_LIMIT = 64 * 2**20


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    A killed or failing writer leaves the previous file intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if disk_full(err):
            raise DiskFullError(
                err.errno or errno.ENOSPC,
                f"{path}: no space left (disk full, quota or file-size limit) while writing it ({err}); "
                f"the previous {path.name} (if any) is left "
                f"intact and the partial temporary file is removed: free space, then re-run the step",
            ) from err
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class DiskFullError(UserError, OSError):
    """No space left (or a file-size limit) while writing an artifact; the message names the file."""

    def __str__(self) -> str:
        return str(self.strerror)


DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def disk_full(err: BaseException) -> bool:
    """True for 'no space left', 'disk quota exceeded' and 'file too large', also when a library (pyarrow) wraps
    the OS error in its own message without setting errno."""
    if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
        return True
    return bool(re.search(r"errno (28|27|122)\b|No space left|Disk quota exceeded|File too large", str(err)))


def write_json(path: str | Path, data: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a bad line raises JsonlError naming the file and the line number."""
    return [row for _, row in iter_jsonl(path)]


class JsonlError(UserError, ValueError):
    """A JSONL line is not UTF-8 or not JSON; the message names the file, the line and (if it can) the field."""


def iter_jsonl(path: str | Path):
    """(line number, row) of every non-blank line. Bytes that are not UTF-8 are an error naming the file, the
    line and the field that holds them, never a silent replacement character; a leading BOM is allowed."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                where = _undecodable_field(raw)
                raise JsonlError(f"{path}: line {lineno}{where}: bytes that are not UTF-8 "
                                 f"({raw[err.start:err.start + 4]!r} at byte {err.start} of the line); "
                                 f"re-encode the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise JsonlError(f"{path}: line {lineno} is not valid JSON: {err}") from err


def _undecodable_field(raw: bytes) -> str:
    """", field 'name'" for the top-level field whose string holds the undecodable bytes, if the line parses."""
    try:
        row = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except ValueError:
        return ""
    if not isinstance(row, dict):
        return ""
    bad = re.compile("[\udc80-\udcff]")
    for key, value in row.items():
        if bad.search(json.dumps(value, ensure_ascii=False)) if not isinstance(value, str) else bad.search(value):
            return f", field '{key}'"
    return ""


def write_parquet(path: str | Path, df) -> Path:
    """Write a pandas DataFrame as parquet, atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


class ArtifactError(UserError, ValueError):
    """A step's output that the next step reads is corrupt, truncated or lacks columns; names file and step."""


class ArtifactMissing(UserError, FileNotFoundError):
    """A step's output that the next step reads does not exist; names the file and the step that writes it."""


def writer_step(path: str | Path) -> str | None:
    """The step folder (`02_sampling`, ...) a file lies under, i.e. the step that wrote it, or None."""
    for part in reversed(Path(path).parent.parts):
        if re.fullmatch(r"\d\d_[a-z]+", part):
            return part
    return None


def read_parquet(path: str | Path, columns: list[str] | None = None, required: Iterable[str] = ()):
    """A step's parquet artifact as a DataFrame. A missing, corrupt or truncated file, or one without the
    `required` columns, is an error naming the file and the step that wrote it (and how to redo that step)."""
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    step = writer_step(path)
    redo = (f"re-run step {step} (`fusechat run --steps {step[:2]} --force`)" if step
            else "write it again")
    if not path.is_file():
        raise ArtifactMissing(f"{path}: not found; " + (f"run step {step} first" if step else "no such file"))
    try:
        df = pd.read_parquet(path, columns=columns)
    except (OSError, ValueError, pa.ArrowException) as err:
        size = path.stat().st_size
        raise ArtifactError(f"{path}: not a readable parquet file ({size} bytes; corrupt or truncated: "
                            f"{str(err).splitlines()[0] if str(err) else type(err).__name__})"
                            f"{'; written by step ' + step if step else ''}: {redo}") from err
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ArtifactError(f"{path}: missing column(s) {missing}{'; written by step ' + step if step else ''} "
                            f"(by another version of the kit?): {redo}")
    return df


def content_files(folder: Path) -> list[Path]:
    """A folder's files in a stable order, without hidden ones (a dot in front: temporary files a killed write left
    behind, caches): they are not content."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))


def hash_path(path: str | Path) -> str:
    """sha256 over a file, or over a folder's files (relative names + contents, `content_files`), in a stable
    order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else content_files(path)
    for file in files:
        rel = file.name if file == path else file.relative_to(path).as_posix()
        digest.update(rel.encode() + b"\0")
        stat = file.stat()
        if stat.st_size > HASH_CONTENT_LIMIT:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            continue
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def hash_obj(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def seed_everything(seed: int) -> dict[str, int]:
    """Seed python, numpy and torch; returns what was seeded, for the manifest."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return {"python": seed, "numpy": seed, "torch": seed}
