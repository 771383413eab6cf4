"""Bring numbers computed elsewhere (LiveBench, AlpacaEval through the official package, anything) into a run's
`07_eval/results.csv`: `fusechat import-results --run-dir outputs/llama3.1-8b FILE`.

File format: CSV with a header row, or JSON (a list of objects, or {"source": "...", "rows": [...]}, where a
file-level `source` fills rows that have none). Every row has the fields

| field     | meaning                                                                                        |
|-----------|------------------------------------------------------------------------------------------------|
| model     | the model evaluated (path or hub id), as results.csv records it                                |
| stage     | base, sft, dpo (the benchmark table's columns) or any other stage name of `eval_models`         |
| benchmark | one of the paper's 14 row labels exactly (`registry.REGISTRY`, e.g. "LiveBench 0831")         |
| metric    | the metric's name, e.g. lc_win_rate, score, pass@1; the table shows each benchmark's first row  |
| value     | percent (0-100); MT-Bench and AlignBench v1.1 on their 0-10 judge scale                         |
| n         | items behind the value: a positive integer, or empty                                            |
| stderr    | standard error in the value's unit, >= 0, or empty                                             |
| source    | a note on where the number comes from (tool, version, command, date); required, not empty      |

Validation stops at the first problem with an error naming the file, the row (data rows count from 1; a CSV's
line number too) and the field. A (stage, benchmark, metric) given twice in one file is an error.

Merge: under the run folder's lock, each imported row replaces the row with the same (stage, benchmark, metric) in
results.csv (every other row is kept) and results.csv is rewritten atomically (tmp + rename). The imported rows,
with their source, file and time, are kept in `07_eval/imported_results.csv`, which step 07 applies again when it
rewrites results.csv (`apply_imports`), so a re-run of the step does not drop them; an imported row wins over a
computed one with the same key. Usage: `import_results("outputs/llama3.1-8b", "livebench.csv")`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation.step import RESULT_COLUMNS

FIELDS = RESULT_COLUMNS + ["source"]
KEY = ["stage", "benchmark", "metric"]
LEDGER = "imported_results.csv"
LEDGER_COLUMNS = FIELDS + ["imported_from", "imported_at"]
SCALE_10 = ("MT-Bench", "AlignBench v1.1")  # judge scores 1-10; everything else in percent
STAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ResultsImportError(UserError):
    """A results file to import is malformed; the message names the file, row and field."""


def benchmark_names() -> list[str]:
    from fusechat_utils.evaluation.registry import REGISTRY

    return list(REGISTRY)


def value_range(benchmark: str) -> tuple[float, float]:
    return (0.0, 10.0) if benchmark in SCALE_10 else (0.0, 100.0)


def _read_rows(path: Path) -> list[tuple[str, dict]]:
    """(where, raw row) pairs; `where` is 'row k' or 'row k (line m)'."""
    if not path.is_file():
        raise ResultsImportError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ResultsImportError(f"{path}: not valid JSON ({err})") from None
        default_source = None
        if isinstance(data, dict):
            default_source = data.get("source")
            data = data.get("rows")
        if not isinstance(data, list):
            raise ResultsImportError(f"{path}: JSON must be a list of rows or an object with a 'rows' list")
        out = []
        for k, row in enumerate(data, 1):
            if not isinstance(row, dict):
                raise ResultsImportError(f"{path}: row {k}: not an object")
            if default_source is not None and row.get("source") in (None, ""):
                row = {**row, "source": default_source}
            out.append((f"row {k}", row))
        return out
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [f for f in FIELDS if f not in header]
    if missing:
        raise ResultsImportError(f"{path}: header (line 1): missing column(s) {', '.join(missing)}; "
                                 f"expected {', '.join(FIELDS)}")
    return [(f"row {k} (line {reader.line_num})", row) for k, row in enumerate(reader, 1)]


def _blank(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))


def _number(path, where, field, v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ResultsImportError(f"{path}: {where}: field '{field}' is {v!r}, not a number") from None
    if not math.isfinite(x):
        raise ResultsImportError(f"{path}: {where}: field '{field}' is {v!r}, not a finite number")
    return x


def validate_row(path: Path, where: str, raw: dict, names: list[str]) -> dict:
    for field in FIELDS:
        if field not in raw:
            raise ResultsImportError(f"{path}: {where}: field '{field}' is missing")
    row = {}
    for field in ("model", "stage", "benchmark", "metric", "source"):
        v = raw[field]
        if _blank(v) or not isinstance(v, str):
            raise ResultsImportError(f"{path}: {where}: field '{field}' must be a non-empty string, got {v!r}")
        row[field] = v.strip()
    if not STAGE.match(row["stage"]):
        raise ResultsImportError(f"{path}: {where}: field 'stage' is {row['stage']!r}: letters, digits, '_', '.', "
                                 "'-' only (base, sft, dpo are the table's columns)")
    if row["benchmark"] not in names:
        raise ResultsImportError(f"{path}: {where}: field 'benchmark' is {row['benchmark']!r}, not one of the "
                                 f"paper's benchmarks: {', '.join(names)}")
    value = _number(path, where, "value", raw["value"])
    lo, hi = value_range(row["benchmark"])
    if not lo <= value <= hi:
        unit = "a 0-10 judge score" if hi == 10 else "a percentage"
        raise ResultsImportError(f"{path}: {where}: field 'value' is {value:g}, out of range [{lo:g}, {hi:g}] "
                                 f"for {row['benchmark']} ({unit})")
    row["value"] = value
    if _blank(raw["n"]):
        row["n"] = None
    else:
        n = _number(path, where, "n", raw["n"])
        if n < 1 or n != int(n):
            raise ResultsImportError(f"{path}: {where}: field 'n' is {raw['n']!r}, not a positive integer")
        row["n"] = int(n)
    if _blank(raw["stderr"]):
        row["stderr"] = None
    else:
        se = _number(path, where, "stderr", raw["stderr"])
        if se < 0:
            raise ResultsImportError(f"{path}: {where}: field 'stderr' is {se:g}, must be >= 0")
        row["stderr"] = se
    return row


def read_import_file(path: str | Path) -> pd.DataFrame:
    """The validated rows of one file (FIELDS columns); ResultsImportError on the first problem."""
    path = Path(path)
    names = benchmark_names()
    rows, seen = [], {}
    for where, raw in _read_rows(path):
        row = validate_row(path, where, raw, names)
        key = tuple(row[k] for k in KEY)
        if key in seen:
            raise ResultsImportError(f"{path}: {where}: (stage, benchmark, metric) = {key} repeats {seen[key]}")
        seen[key] = where
        rows.append(row)
    if not rows:
        raise ResultsImportError(f"{path}: no rows to import")
    return pd.DataFrame(rows, columns=FIELDS)


def _replace(table: pd.DataFrame, new: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`table` without the rows whose key `new` has, then `new`'s rows (columns as given)."""
    table = table.reindex(columns=columns)
    if not table.empty:
        keys = set(map(tuple, new[KEY].astype(str).values))
        table = table[[tuple(k) not in keys for k in table[KEY].astype(str).values]]
    new = new.reindex(columns=columns)
    parts = [t for t in (table, new) if not t.empty]
    return pd.concat(parts, ignore_index=True) if parts else new


def apply_imports(step_dir: str | Path, table: pd.DataFrame) -> pd.DataFrame:
    """`table` (results rows) with the run's imported rows laid over it; unchanged when nothing was imported."""
    ledger = Path(step_dir) / LEDGER
    if not ledger.is_file():
        return table
    imported = pd.read_csv(ledger)
    return _replace(table, imported, list(table.columns) if len(table.columns) else RESULT_COLUMNS)


def import_results(run_dir: str | Path, path: str | Path) -> pd.DataFrame:
    """Validate `path`, record it in the ledger and merge it into results.csv; returns the imported rows."""
    from fusechat_utils.io import atomic_path
    from fusechat_utils.runlock import run_lock

    new = read_import_file(path)
    run_dir = Path(run_dir)
    step_dir = run_dir / "07_eval"
    with run_lock(run_dir):
        step_dir.mkdir(parents=True, exist_ok=True)
        stamped = new.assign(imported_from=str(Path(path).resolve()),
                             imported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        ledger_path = step_dir / LEDGER
        ledger = pd.read_csv(ledger_path) if ledger_path.is_file() else pd.DataFrame(columns=LEDGER_COLUMNS)
        ledger = _replace(ledger, stamped, LEDGER_COLUMNS)
        results_path = step_dir / "results.csv"
        results = pd.read_csv(results_path) if results_path.is_file() else pd.DataFrame(columns=RESULT_COLUMNS)
        results = _replace(results, new, list(results.columns) or RESULT_COLUMNS)
        # ledger first: if the second write fails, the next run of step 07 still applies the import
        with atomic_path(ledger_path) as tmp:
            ledger.to_csv(tmp, index=False)
        with atomic_path(results_path) as tmp:
            results.to_csv(tmp, index=False)
    return new
