"""The 8 source datasets of FuseChat-3.0: hub ids, real column schemas, and one adapter per dataset.

An adapter maps one row of the dataset's real schema to the kit's prompt fields. Paper profiles read the hub
with `datasets.load_dataset`; the toy profile reads fixture files written in the same schemas, through the same
adapters.

Bad input (tests/test_bad_input.py), per dataset: a missing column, a null or a wrong type in a column the adapter
reads, a line that is not JSON or not an object, bytes that are not UTF-8: `SchemaError` naming dataset, file,
row (0-based; for fixture files also the line) and column, before anything is written. An empty or whitespace
prompt, a prompt over `prompts.MAX_PROMPT_CHARS`, a repeated id (`id_column`) with other text, and a repeated
text are dropped and counted in selection.csv (`dropped_empty`, `dropped_too_long`, `dropped_duplicate_id`,
`dropped_duplicate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


from fusechat_utils.errors import UserError


class SchemaError(UserError, ValueError):
    """A row does not have the dataset's real schema (or its file is not UTF-8 JSONL)."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # the paper's name for it (dataset_composition.csv)
    hf_id: str
    category: str  # general | math | code | chinese
    columns: dict[str, type | tuple[type, ...]]  # the columns the adapter reads, with their types
    adapt: Callable[[dict[str, Any]], dict[str, Any]]
    language: str = "en"
    id_column: str | None = None  # the dataset's own row id, if it has one (a repeated id is counted, dropped)

    @property
    def fixture_name(self) -> str:
        return self.hf_id.replace("/", "__") + ".jsonl"


def _text(*parts: str) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _ultrafeedback(row):
    return {"prompt": row["instruction"], "source_tag": row["source"]}


def _magpie(row):
    return {"prompt": row["instruction"], "source_tag": row["task_category"]}


def _helpsteer2(row):
    return {"prompt": row["prompt"]}


def _openmath(row):
    return {
        "prompt": row["problem"],
        "gold_answer": row["expected_answer"],
        # OpenMathInstruct-2's own solution is kept as the Llama-3.1-405B-Instruct response (paper §3.1).
        "reference_response": row["generated_solution"],
        "reference_model": "Llama-3.1-405B-Instruct",
        "source_tag": row["problem_source"],
    }


def _leetcode(row):
    from fusechat_utils.code_tests import leetcode_tests

    found = leetcode_tests(row["content"], row["python"])
    tests, entry_point = found if found else (None, None)
    return {"prompt": row["content"], "tests": tests, "entry_point": entry_point, "source_tag": row["difficulty"]}


def _self_oss(row):
    from fusechat_utils.code_tests import self_oss_tests

    # `instruction` is the user prompt; `prompt` is the generation prompt used to build the dataset.
    found = self_oss_tests(row["response"])
    tests, entry_point = found if found else (None, None)
    return {"prompt": row["instruction"], "tests": tests, "entry_point": entry_point}


def _alpaca_zh(row):
    return {"prompt": _text(row["instruction"], row["input"])}


S, L = str, list
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("UltraFeedback", "openbmb/UltraFeedback", "general",
                    {"source": S, "instruction": S}, _ultrafeedback),
        DatasetSpec("Magpie-Pro-DPO-100K-v0.1", "Magpie-Align/Magpie-Pro-DPO-100K-v0.1", "general",
                    {"uuid": S, "instruction": S, "task_category": S}, _magpie, id_column="uuid"),
        DatasetSpec("HelpSteer2", "nvidia/HelpSteer2", "general", {"prompt": S, "response": S}, _helpsteer2),
        DatasetSpec("OpenMathInstruct-2", "nvidia/OpenMathInstruct-2", "math",
                    {"problem": S, "generated_solution": S, "expected_answer": S, "problem_source": S}, _openmath),
        DatasetSpec("leetcode", "greengerong/leetcode", "code",
                    {"id": int, "slug": S, "content": S, "python": S, "difficulty": (S, type(None))}, _leetcode,
                    id_column="id"),
        DatasetSpec("self-oss-instruct-sc2-exec-filter-50k", "bigcode/self-oss-instruct-sc2-exec-filter-50k", "code",
                    {"instruction": S, "response": S}, _self_oss),
        DatasetSpec("alpaca_gpt4_zh", "llamafactory/alpaca_gpt4_zh", "chinese",
                    {"instruction": S, "input": S, "output": S}, _alpaca_zh, language="zh"),
        DatasetSpec("Magpie-Qwen2-Pro-200K-Chinese", "Magpie-Align/Magpie-Qwen2-Pro-200K-Chinese", "chinese",
                    {"uuid": S, "instruction": S, "task_category": S}, _magpie, language="zh", id_column="uuid"),
    ]
}


class FixtureRows:
    """A fixture file's rows, read lazily: memory does not grow with the file (01 at OpenMathInstruct-2's 14M rows).

    `located()` yields (row, line suffix for messages, byte offset of its line); `read_at(offsets)` re-reads rows
    by those offsets (01 re-reads only the rows its cap keeps). A line that is not UTF-8 JSON raises SchemaError
    with `io.iter_jsonl`'s message (file, line, field), prefixed by the dataset and row.
    """

    def __init__(self, spec: DatasetSpec, path):
        self.spec, self.path = spec, path

    def __iter__(self):
        return (row for row, _, _ in self.located())

    def located(self):
        import json

        index, offset = 0, 0
        with open(self.path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                start, offset = offset, offset + len(raw)
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw, start = raw[3:], start + 3
                try:
                    line = raw.decode("utf-8")
                    if not line.strip():
                        continue
                    row = json.loads(line)
                except ValueError:
                    self._raise_jsonl_error(index)
                yield row, f" (file line {lineno})", start
                index += 1

    def _raise_jsonl_error(self, index: int) -> None:
        """Re-scan with io.iter_jsonl so the message is the one place's wording (file, line, field)."""
        from fusechat_utils.io import JsonlError, iter_jsonl

        try:
            for _ in iter_jsonl(self.path):
                pass
        except JsonlError as err:
            raise SchemaError(f"{self.spec.name} (row {index}): {err}") from None
        raise AssertionError(f"{self.path}: a line failed to parse here but not in io.iter_jsonl")

    def read_at(self, offsets):
        """The rows whose lines start at `offsets` (ascending), in that order."""
        import json

        with open(self.path, "rb") as fh:
            for offset in offsets:
                fh.seek(offset)
                yield json.loads(fh.readline().decode("utf-8"))


def check_row(spec: DatasetSpec, row: Any, where: str, index: int, line: str = "") -> None:
    """Raise SchemaError naming dataset, file, row and column if `row` lacks a column or has a null or wrong type."""
    at = f"{spec.name} ({where}) row {index}"
    if not isinstance(row, dict):
        raise SchemaError(f"{at}: expected an object with columns {list(spec.columns)}, got {type(row).__name__}{line}")
    for column, expected in spec.columns.items():
        if column not in row:
            raise SchemaError(f"{at}: missing column '{column}'{line}")
        value = row[column]
        if not isinstance(value, expected) or isinstance(value, bool):
            names = getattr(expected, "__name__", None) or "/".join(t.__name__ for t in expected)
            got = "null" if value is None else f"{type(value).__name__} {str(value)[:60]!r}"
            raise SchemaError(f"{at}: column '{column}' must be {names}, got {got}{line}")


def load_rows(spec: DatasetSpec, source: str, fixtures_dir: str, split: str):
    """(rows, where): the dataset's rows from the hub (`source="hub"`: an Arrow-backed `datasets.Dataset`, memory
    mapped) or from its fixture file (`FixtureRows`, read lazily); neither holds the rows in memory."""
    if source == "hub":
        import datasets

        ds = datasets.load_dataset(spec.hf_id, split=split)
        return ds, f"hub:{spec.hf_id}[{split}]"
    if source != "fixtures":
        raise ValueError(f"prompts_source must be 'hub' or 'fixtures', got {source!r}")
    from pathlib import Path

    path = Path(fixtures_dir) / spec.fixture_name
    if not path.is_file():
        raise FileNotFoundError(f"{spec.name}: fixture file {path} not found (build it: `fusechat toy-world`)")
    return FixtureRows(spec, path), str(path)
