"""Step 01: select prompts from the 8 source datasets, filter them as the paper does, write prompts.parquet.

Usage (what notebooks/01_prompts.ipynb does):
    cfg = PromptsConfig.from_params(globals()); result = prompts.run(cfg)

Filters (paper §3.1; how is [U], so the rules here are the kit's, each counted by reason, never silent):
- general and Chinese sets: drop code and math prompts (Magpie's `task_category`, else a keyword heuristic);
- code sets: keep only prompts with tests (leetcode: parsed from the examples; self-oss: the response's asserts);
- HelpSteer2 multi-turn prompts (`<extra_id_1>` turn markers) are dropped: the pipeline samples single turns;
- dedupe on normalized text across all datasets (first dataset in `prompts_datasets` order wins);
- per-dataset caps after these filters, a seeded random subset (`prompts_max_per_dataset`: the toy's final counts;
  in the paper profiles the pool handed to sampling: the paper's own counts are drawn after pairing, in 04).
Streaming (`select_dataset`): rows are read lazily, so memory grows with what 01 keeps, not with what it reads:
dedupe remembers a 16-byte hash of each distinct normalized prompt, a capped dataset 8 bytes per surviving row
(where it is) and re-reads only the rows its cap keeps, the same rows the in-memory version kept
(`cap_positions`). benchmarks/bench_prompts_memory.py measures it on OpenMathInstruct-2's schema.
Bad input (kit rules, counted): an empty or whitespace-only prompt (`empty`); a prompt longer than
MAX_PROMPT_CHARS (`too_long`: no source could answer it within a 2048-token training length, and one 1 MB prompt
would stop a vLLM batch hours into sampling); a row whose dataset id (`DatasetSpec.id_column`) was already seen with
other text (`duplicate_id`, first wins). A missing column, a null, a wrong type, a line that is not UTF-8 JSON
stop the step with `SchemaError` naming file, row and column; nothing is written then.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from fusechat_utils.config import StepConfig, invalid
from fusechat_utils.prompt_sources import DATASETS, check_row, load_rows

COLUMNS = ["prompt_id", "dataset", "category", "prompt", "gold_answer", "tests", "entry_point", "language",
           "reference_response", "reference_model"]
REASONS = ["empty", "too_long", "duplicate_id", "multi_turn", "code_or_math", "no_tests", "duplicate", "over_cap"]
# ~8k tokens of English, 4x the paper's 2048-token training length; longer prompts are dropped (`too_long`).
MAX_PROMPT_CHARS = 32_000
MAGPIE_DROP_CATEGORIES = {"Coding & Debugging", "Math"}
# Toy caps keep the CPU demo in minutes. General gets 3 x 300 and math 400: with 100 per general dataset the
# target's SFT on instruction following varied from 29 to 51 % instruction-level over 3 seeds.
TOY_CAPS = {"UltraFeedback": 300, "Magpie-Pro-DPO-100K-v0.1": 300, "HelpSteer2": 300, "OpenMathInstruct-2": 400,
            "leetcode": 60, "self-oss-instruct-sc2-exec-filter-50k": 150, "alpaca_gpt4_zh": 100,
            "Magpie-Qwen2-Pro-200K-Chinese": 100}

# Keyword heuristic for code/math inside general and Chinese sets: the paper does not say how it filtered ([U]).
CODE_PATTERNS = [r"```", r"\bdef \w+\(", r"#include", r"\bfunction\s*\(", r"\bpython\b", r"\bjava(script)?\b",
                 r"\bc\+\+", r"\bsql\b", r"\bcode\b", r"\bprogram\b", r"代码", r"编程", r"程序", r"函数"]
MATH_PATTERNS = [r"\$[^$]+\$", r"\\frac|\\sqrt|\\boxed", r"\d\s*[+*/^×÷=]\s*\d", r"\bsolve\b", r"\bequation\b",
                 r"\bcalculate\b", r"\bwhat is \d", r"计算", r"方程", r"数学", r"求解", r"等于多少"]
_CODE_RE = re.compile("|".join(CODE_PATTERNS), re.IGNORECASE)
_MATH_RE = re.compile("|".join(MATH_PATTERNS), re.IGNORECASE)


@dataclass
class PromptsConfig(StepConfig):
    STEP: ClassVar[str] = "01_prompts"

    prompts_source: str = field(default="fixtures", metadata={"help": "'hub' (datasets.load_dataset) or 'fixtures'"})
    prompts_fixtures_dir: str = field(default="outputs/toy_world/fixtures", metadata={"help": "fixture files"})
    prompts_datasets: list[str] = field(default_factory=lambda: list(DATASETS), metadata={"help": "datasets, order"})
    prompts_hub_splits: dict = field(default_factory=dict, metadata={"help": "dataset -> split (default 'train')"})
    prompts_max_per_dataset: dict = field(default_factory=lambda: dict(TOY_CAPS),
                                          metadata={"help": "dataset -> cap after filters"})
    prompts_filter_code_math: bool = field(default=True, metadata={"help": "drop code/math from general+Chinese"})
    prompts_seed: int = field(default=0, metadata={"help": "seed of the per-dataset caps' random subset"})
    prompts_leetcode_signature_hint: bool = field(
        default=True, metadata={"help": "append 'Implement it as `def f(...)`' so tests can call the entry point"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [d for d in [*self.prompts_datasets, *self.prompts_max_per_dataset, *self.prompts_hub_splits]
                   if d not in DATASETS]
        if unknown:
            raise ValueError(f"prompts: unknown dataset name(s) {unknown}; known: {list(DATASETS)}")
        if self.prompts_source not in ("hub", "fixtures"):
            raise invalid(f"key 'prompts_source' must be 'hub' or 'fixtures', got {self.prompts_source!r}",
                          "prompts_source")
        for name, cap in self.prompts_max_per_dataset.items():
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
                raise invalid(f"key 'prompts_max_per_dataset': the cap of {name} must be an int >= 0 (or null: "
                              f"no cap), got {cap!r}", "prompts_max_per_dataset")
        for name, split in self.prompts_hub_splits.items():
            if not isinstance(split, str) or not split:
                raise invalid(f"key 'prompts_hub_splits': the split of {name} must be a split name, got {split!r}",
                              "prompts_hub_splits")
        if len(set(self.prompts_datasets)) != len(self.prompts_datasets):
            raise invalid(f"key 'prompts_datasets' names a dataset twice: {self.prompts_datasets}",
                          "prompts_datasets")


def normalize(text: str) -> str:
    """Text used for dedupe: NFKC, lowercase, punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def prompt_id(dataset: str, prompt: str) -> str:
    return hashlib.sha1(f"{dataset}\0{normalize(prompt)}".encode()).hexdigest()[:16]


def looks_like_code_or_math(text: str) -> bool:
    return bool(_CODE_RE.search(text) or _MATH_RE.search(text))


def drop_reason(spec, record: dict[str, Any], cfg: PromptsConfig) -> str | None:
    """Why a record is dropped by the paper's per-category filters, or None to keep it."""
    if not record["prompt"].strip():
        return "empty"
    if len(record["prompt"]) > MAX_PROMPT_CHARS:
        return "too_long"
    if spec.name == "HelpSteer2" and "<extra_id_1>" in record["prompt"]:
        return "multi_turn"
    if spec.category in ("general", "chinese") and cfg.prompts_filter_code_math:
        if record.get("source_tag") in MAGPIE_DROP_CATEGORIES or looks_like_code_or_math(record["prompt"]):
            return "code_or_math"
    if spec.category == "code" and not record.get("tests"):
        return "no_tests"
    return None


def text_key(text: str) -> int:
    """128-bit hash of normalize(text): what dedupe remembers of a prompt (16 bytes of digest, not the text)."""
    return int.from_bytes(hashlib.blake2b(normalize(text).encode(), digest_size=16).digest(), "big")


def _adapted(spec, row: dict[str, Any], cfg: PromptsConfig) -> dict[str, Any]:
    return {"dataset": spec.name, "category": spec.category, "language": spec.language, **spec.adapt(row)}


def _hinted(spec, row: dict[str, Any], record: dict[str, Any], cfg: PromptsConfig) -> dict[str, Any]:
    if spec.name == "leetcode" and cfg.prompts_leetcode_signature_hint:
        signature = re.search(r"def \w+\([^)]*\)", row["python"])
        record["prompt"] = _with_signature(record["prompt"], signature.group(0) if signature else None)
    return record


def _located(rows):
    """(row, line suffix, locator) of each row: FixtureRows give byte offsets, anything else its row index."""
    if hasattr(rows, "located"):
        yield from rows.located()
    else:
        for index, row in enumerate(rows):
            yield row, "", index


def _reread(rows, locators: list[int]):
    """The rows at `locators` (ascending), again: by byte offset from a fixture file, by index from a hub Dataset."""
    if hasattr(rows, "read_at"):
        return rows.read_at(locators)
    if hasattr(rows, "select"):  # datasets.Dataset: one Arrow take, not one lookup per row
        return iter(rows.select(locators))
    return (rows[i] for i in locators)


def cap_positions(n: int, cap: int | None, seed: int) -> list[int] | None:
    """Positions (ascending) of the `cap` rows a seeded subset of `n` keeps; None = all.

    Exactly the rows `DataFrame.sample(n=cap, random_state=seed)` took when 01 held every row in memory (pandas:
    `RandomState(seed).choice(n, cap, replace=False)` = the first `cap` of `RandomState(seed).permutation(n)`), so
    the streaming 01 keeps the same prompts as before. Its cost is one int64 per survivor, briefly.
    """
    import numpy as np

    if cap is None or n <= cap:
        return None
    return sorted(np.random.RandomState(seed).permutation(n)[:cap].tolist())


def select_dataset(spec, cfg: PromptsConfig, seen: set[int]) -> tuple[list[dict], dict[str, int]]:
    """One dataset, streamed: the records it keeps (dedupe against `seen`, updated, then the cap) and its counts.

    Memory is bounded by what it keeps, not by what it reads: the rows are read lazily; dedupe remembers a
    128-bit hash per distinct prompt (`seen`, across datasets, first in `prompts_datasets` order wins) and the
    id check one per id; a capped dataset remembers where each surviving row is (8 bytes) and, once the survivors
    outnumber the cap, re-reads only the rows the cap keeps (`cap_positions`: the same rows as before).
    """
    from array import array

    split = cfg.prompts_hub_splits.get(spec.name, "train")
    rows, where = load_rows(spec, cfg.prompts_source, cfg.prompts_fixtures_dir, split)
    cap = cfg.prompts_max_per_dataset.get(spec.name)
    counts = {"read": 0, **{r: 0 for r in REASONS}}
    seen_ids: dict[Any, int] = {}
    kept: list[dict] = []  # the survivors' records while they fit under the cap
    where_kept = array("q")  # every survivor's locator (byte offset or row index)
    for index, (row, line, locator) in enumerate(_located(rows)):
        counts["read"] += 1
        check_row(spec, row, where, index, line)
        record = _adapted(spec, row, cfg)
        reason = drop_reason(spec, record, cfg)
        if reason is None and spec.id_column:
            # the same id with the same text is left to the text dedupe ("duplicate"); with other text, first wins
            key = text_key(record["prompt"])
            if seen_ids.setdefault(row[spec.id_column], key) != key:
                reason = "duplicate_id"
        if reason:
            counts[reason] += 1
            continue
        record = _hinted(spec, row, record, cfg)
        key = text_key(record["prompt"])
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        where_kept.append(locator)
        if cap is None or len(where_kept) <= cap:
            kept.append(record)
        elif kept:
            kept = []  # over the cap: which rows stay is known only at the end; they are re-read then
    positions = cap_positions(len(where_kept), cap, cfg.prompts_seed)
    if positions is not None:
        counts["over_cap"] = len(where_kept) - cap
        kept = [_hinted(spec, row, _adapted(spec, row, cfg), cfg)
                for row in _reread(rows, [where_kept[i] for i in positions])]
    return kept, counts


def _with_signature(prompt: str, signature: str | None) -> str:
    if not signature or signature in prompt:
        return prompt
    return f"{prompt.rstrip()}\n\nImplement it in Python as `{signature}`."


def to_frame(records: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(records, columns=sorted({k for r in records for k in r} | set(COLUMNS)))
    df["prompt_id"] = [prompt_id(d, p) for d, p in zip(df["dataset"], df["prompt"])]
    return df[COLUMNS].astype(object).where(df[COLUMNS].notna(), None)


def selection_table(counts: dict[str, dict], df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: read, dropped by reason, kept, beside the paper's "Selected" count (reference only)."""
    from fusechat_utils.paper import paper_table

    paper = paper_table("dataset_composition").set_index("dataset")["selected"]
    rows = []
    for name, c in counts.items():
        kept = int((df["dataset"] == name).sum())
        rows.append({"dataset": name, "category": DATASETS[name].category, "read": c["read"],
                     **{f"dropped_{r}": c[r] for r in REASONS}, "kept": kept,
                     "paper_selected": int(paper.get(name, 0))})
    table = pd.DataFrame(rows)
    bad = table[table["read"] != table[[f"dropped_{r}" for r in REASONS]].sum(axis=1) + table["kept"]]
    if len(bad):
        raise AssertionError(f"selection counts do not add up for {list(bad['dataset'])}")
    return table


def run(cfg: PromptsConfig) -> dict[str, Any]:
    """Read (streamed), adapt, filter, dedupe, cap; write prompts.parquet and selection.csv into the step folder."""
    from fusechat_utils.io import atomic_path, write_parquet

    records, counts, seen = [], {}, set()
    for name in cfg.prompts_datasets:
        kept, counts[name] = select_dataset(DATASETS[name], cfg, seen)
        records.extend(kept)
    del seen
    df = to_frame(records)
    table = selection_table(counts, df)
    out = cfg.step_dir
    write_parquet(out / "prompts.parquet", df)
    with atomic_path(out / "selection.csv") as tmp:
        table.to_csv(tmp, index=False)
    return {"prompts": df, "selection": table, "path": out / "prompts.parquet"}
