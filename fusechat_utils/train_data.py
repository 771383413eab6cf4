"""What 05_sft / 06_dpo train on: this run's 04_pairs sets, a local file, or a hub dataset; and the export of a run's
04 sets in the released FuseChat-3.0 schema (`fusechat export-data`).

Usage:
    src = resolve(cfg.sft_data, run_dir, "sft")   # "" -> <run_dir>/04_pairs/sft.parquet
    rows = sft_rows(src)                          # [{prompt: [...], completion: [assistant]}], what SFTTrainer gets
    rows = dpo_rows(src)                          # [{prompt: [...], chosen: [...], rejected: [...]}]
    export(run_dir, out_dir)                      # <out>/sft.jsonl, <out>/dpo.jsonl in the released schema

The released schema (FuseAI/FuseChat-3.0-SFT-Data and -DPO-Data on the hub: one `train` split, stored as
train.json), which 04_pairs writes too (pairs.sft_frame / dpo_frame):
    SFT rows: dataset, source_model, conversations = [{from: human, value}, {from: gpt, value}] (ShareGPT)
    DPO rows: dataset, source_model, prompt = [{role: user, content}], chosen / rejected = [{role: assistant, content}]
(the dataset cards were not readable from here; the fields are those that scripts loading the released sets read:
conversations, dataset and source_model of the SFT set; prompt[0]['content'], chosen[0]['content'],
rejected[0]['content'], dataset and source_model of the DPO set). TRL's conversational formats are accepted too:
SFT rows with `messages`, or `prompt` + `completion`; DPO rows without `prompt` whose chosen and rejected
conversations share their leading turns (TRL's implicit prompt). A string where a message list is expected is one
message (user for a prompt, assistant for a completion / chosen / rejected). Other columns are ignored.

SFT trains on the last assistant turn of each row (completion-only loss, see train_sft.py); earlier turns are context.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusechat_utils.config import PROJECT_ROOT, invalid, looks_local
from fusechat_utils.errors import UserError

FORMATS = (".parquet", ".jsonl", ".json")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
SFT_EXPORT = ["dataset", "source_model", "conversations"]
DPO_EXPORT = ["dataset", "source_model", "prompt", "chosen", "rejected"]
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?(:[\w.-]+)?(@[\w./-]+)?")  # org/name[:config][@revision]


class DataError(UserError, ValueError):
    """A training data file or row the steps cannot use; the message names the file, the row and the field."""


@dataclass(frozen=True)
class Source:
    """Where a step's training rows come from: kind run (this run's 04_pairs set), file or hub."""

    kind: str
    path: str  # the file (run, file) or the hub id (hub)
    revision: str | None = None
    config: str | None = None  # a hub dataset's config (`fusechat push` writes sft and dpo)

    def describe(self, run_dir: str | Path) -> dict[str, Any]:
        """What the step's metrics.json records about its data: the source (a run's own set relative to the run
        folder, a file inside the kit relative to it) and its hash as the manifest's inputs have it (hub: the id
        and revision)."""
        from fusechat_utils.io import hash_path

        if self.kind == "hub":
            return {"source": f"hub:{self.path}", "config": self.config,
                    "revision": self.revision or "default branch (unpinned)"}
        path = Path(self.path)
        base = Path(run_dir) if self.kind == "run" else PROJECT_ROOT
        shown = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
        return {"source": shown, "hash": hash_path(path)}


# --------------------------------------------------------------------------------------------------------------
# the `<p>data` params


def is_local(value: str) -> bool:
    """A file path (a data file's suffix, a path that looks local or exists) rather than a hub id."""
    return value.endswith(FORMATS) or looks_local(value) or (PROJECT_ROOT / value).exists()


def check_value(value: str, key: str) -> None:
    """ParamError for a value that is neither a data file nor a hub id (checked when the config is built)."""
    if not value:
        return
    if is_local(value):
        if not value.endswith(FORMATS):
            raise invalid(f"key '{key}' is the local path {value!r}: name a {', '.join(FORMATS)} file", key)
    elif not HUB_ID.fullmatch(value):
        raise invalid(f"key '{key}' must be '' (this run's 04_pairs set), a {', '.join(FORMATS)} file or a hub "
                      f"dataset id such as FuseAI/FuseChat-3.0-SFT-Data[:config][@revision], got {value!r}", key)


def check_exists(value: str, key: str) -> None:
    """ParamError for a local data file that does not exist (checked before any step runs)."""
    if value and is_local(value) and not (PROJECT_ROOT / Path(value).expanduser()).is_file():
        raise invalid(f"key '{key}' is the local file {value!r}, which does not exist", key)


def resolve(value: str, run_dir: str | Path, name: str) -> Source:
    """`sft_data` / `dpo_data` -> Source; `name` is sft or dpo (the 04_pairs file used when `value` is '')."""
    if not value:
        return Source("run", str(Path(run_dir) / "04_pairs" / f"{name}.parquet"))
    if is_local(value):
        return Source("file", str(PROJECT_ROOT / Path(value).expanduser()))
    hub_id, _, revision = value.partition("@")
    hub_id, _, config = hub_id.partition(":")
    return Source("hub", hub_id, revision or None, config or None)


# --------------------------------------------------------------------------------------------------------------
# reading rows


def read_rows(src: Source) -> list[tuple[str, dict]]:
    """(where, row) of every row: `where` names the file (or hub id) and row, for error messages."""
    if src.kind == "hub":
        from datasets import load_dataset

        data = load_dataset(src.path, src.config, split="train", revision=src.revision)
        return [(f"{src.path} row {i}", row) for i, row in enumerate(data)]
    path = Path(src.path)
    if path.suffix == ".parquet":
        from fusechat_utils.io import read_parquet

        return [(f"{path} row {i}", row) for i, row in enumerate(read_parquet(path).to_dict("records"))]
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return _json_rows(path)


def _json_rows(path: Path) -> list[tuple[str, dict]]:
    """A .json file holds a JSON array of rows or, as the hub's train.json files may, JSON lines; .jsonl: lines."""
    from fusechat_utils.io import iter_jsonl

    rows: list[tuple[str, Any]] | None = None
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None  # not one JSON document: read it as JSON lines, which names the bad line
        if isinstance(data, list):
            rows = [(f"{path} row {i}", row) for i, row in enumerate(data)]
        elif data is not None:
            raise DataError(f"{path}: expected a JSON array of row objects (or JSON lines), got a "
                            f"{type(data).__name__}")
    if rows is None:
        rows = [(f"{path} row {i} (line {n})", row) for i, (n, row) in enumerate(iter_jsonl(path))]
    for where, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object of fields, got {type(row).__name__}")
    return rows


# --------------------------------------------------------------------------------------------------------------
# rows -> what the trainers get


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # parquet / pandas fill gaps with NaN


def _turns(value: Any, where: str, field: str, string_role: str | None = None) -> list[dict]:
    """A message list ([{role, content}] or ShareGPT [{from, value}]) as [{role, content}], roles mapped to
    user / assistant / system. A string is one `string_role` message where that is allowed."""
    if isinstance(value, str) and string_role:
        return [{"role": string_role, "content": value}]
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise DataError(f"{where}: field '{field}' must be a non-empty list of {{role, content}} messages, got "
                        f"{type(value).__name__}")
    out = []
    for k, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise DataError(f"{where}: field '{field}' message {k} is not a {{role, content}} (or {{from, value}}) "
                            f"mapping")
        # parquet gives every struct all keys seen in the column, unset ones as None
        role = turn.get("role") if turn.get("role") is not None else turn.get("from")
        content = turn.get("content") if turn.get("content") is not None else turn.get("value")
        if ROLES.get(role) is None:
            raise DataError(f"{where}: field '{field}' message {k} has unknown role {role!r} (known: "
                            f"{', '.join(ROLES)})")
        if not isinstance(content, str):
            raise DataError(f"{where}: field '{field}' message {k} has no string content ({turn!r})")
        out.append({"role": ROLES[role], "content": content})
    return out


def to_prompt_completion(turns: Any, where: str, field: str = "conversations") -> dict:
    """A conversation -> {prompt: all turns before the last, completion: [the last, an assistant turn]}."""
    msgs = _turns(turns, where, field)
    if len(msgs) < 2 or msgs[-1]["role"] != "assistant":
        raise DataError(f"{where}: field '{field}' must end with an assistant (gpt) turn after at least one other "
                        f"turn")
    return {"prompt": msgs[:-1], "completion": msgs[-1:]}


def sft_example(row: dict, where: str) -> dict:
    """One SFT row (released schema or TRL conversational) -> {prompt, completion}."""
    for field in ("conversations", "messages"):
        if not _missing(row.get(field)):
            return to_prompt_completion(row[field], where, field)
    if not _missing(row.get("prompt")) and not _missing(row.get("completion")):
        turns = _turns(row["prompt"], where, "prompt", "user") + _turns(row["completion"], where, "completion",
                                                                           "assistant")
        return to_prompt_completion(turns, where, "completion")
    raise DataError(f"{where}: no SFT conversation: expected a field 'conversations' (FuseChat-3.0 / ShareGPT), "
                    f"'messages', or 'prompt' and 'completion' (fields: {sorted(row)})")


def dpo_example(row: dict, where: str) -> dict:
    """One DPO row (released schema, TRL explicit or implicit prompt) -> {prompt, chosen, rejected}."""
    for field in ("chosen", "rejected"):
        if _missing(row.get(field)):
            raise DataError(f"{where}: field '{field}' is missing (fields: {sorted(row)})")
    if not _missing(row.get("prompt")):
        return {"prompt": _turns(row["prompt"], where, "prompt", "user"),
                "chosen": _turns(row["chosen"], where, "chosen", "assistant"),
                "rejected": _turns(row["rejected"], where, "rejected", "assistant")}
    chosen, rejected = _turns(row["chosen"], where, "chosen"), _turns(row["rejected"], where, "rejected")
    n = 0  # the implicit prompt: the turns both conversations start with
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if n == 0 or n == len(chosen) or n == len(rejected):
        raise DataError(f"{where}: no field 'prompt', and 'chosen' and 'rejected' do not share leading turns "
                        f"followed by different answers (TRL's implicit prompt)")
    return {"prompt": chosen[:n], "chosen": chosen[n:], "rejected": rejected[n:]}


def sft_rows(src: Source) -> list[dict]:
    rows = [sft_example(row, where) for where, row in read_rows(src)]
    if not rows:
        raise DataError(f"{src.path}: no SFT rows")
    return rows


def dpo_rows(src: Source) -> list[dict]:
    rows = [dpo_example(row, where) for where, row in read_rows(src)]
    if not rows:
        raise DataError(f"{src.path}: no DPO rows")
    return rows


# --------------------------------------------------------------------------------------------------------------
# export


def _plain(value: Any) -> Any:
    """numpy arrays and scalars from parquet -> JSON-able lists and numbers."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def export(run_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write the run's 04_pairs sets as <out>/sft.jsonl and <out>/dpo.jsonl, with the released sets' columns only,
    so `sft_data: <out>/sft.jsonl` / `dpo_data: <out>/dpo.jsonl` train on the same rows as the run's own sets."""
    from fusechat_utils.io import read_parquet, write_json, write_jsonl

    pairs, out = Path(run_dir) / "04_pairs", Path(out_dir)
    written = {}
    for name, columns in (("sft", SFT_EXPORT), ("dpo", DPO_EXPORT)):
        df = read_parquet(pairs / f"{name}.parquet", required=columns)
        written[name] = write_jsonl(out / f"{name}.jsonl", (
            {c: _plain(row[c]) for c in columns} for row in df.to_dict("records")))
    manifest = pairs / "manifest.json"
    write_json(out / "export.json", {
        "run_dir": str(run_dir), "files": {k: p.name for k, p in written.items()},
        "04_pairs_outputs_hash": json.loads(manifest.read_text()).get("outputs_hash") if manifest.is_file() else None,
        "schema": {"sft": SFT_EXPORT, "dpo": DPO_EXPORT}})
    return written
