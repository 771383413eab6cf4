"""Bad input suite (issue 10): every way an input can be wrong ends in a clear error naming file, row and field (or
key and file), or in a counted drop in selection.csv, and nothing already written is damaged.

Tables: the 8 dataset adapters x bad-row kinds; params (unknown key, wrong type, impossible values, step ranges,
model paths); parquet files between steps (corrupt, truncated, empty, missing, wrong columns); a disk that fills
during a write (simulated ENOSPC, and a real RLIMIT_FSIZE limit in a subprocess).
"""

import copy
import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fusechat_utils import io
from fusechat_utils.config import PARAMS_DIR, ParamError, load_profile
from fusechat_utils.prompt_sources import DATASETS, SchemaError
from fusechat_utils.prompts import MAX_PROMPT_CHARS, PromptsConfig, run
from fusechat_utils.steps import STEPS, StepsError, select_steps

# One valid row per dataset, in its real schema; each is kept by 01_prompts on its own.
VALID = {
    "UltraFeedback": {"source": "sharegpt", "instruction": "Plan a four-day family trip to Cairo", "models": []},
    "Magpie-Pro-DPO-100K-v0.1": {"uuid": "8cabba98-0001", "instruction": "Plan a four-day family trip to Cairo",
                                 "task_category": "Planning"},
    "HelpSteer2": {"prompt": "Write a short poem about the sea", "response": "Waves...", "helpfulness": 3},
    "OpenMathInstruct-2": {"problem": "Solve for $y$: y + 2 = 4", "generated_solution": "y = \\boxed{2}",
                           "expected_answer": "2", "problem_source": "augmented_math"},
    "leetcode": {"id": 1, "slug": "double", "title": "Double", "difficulty": "Easy",
                 "content": "Return twice `x`.\n\n**Example 1:**\n\n**Input:** x = 2\n**Output:** 4\n",
                 "python": "```python\ndef double(x):\n    return 2 * x\n```"},
    "self-oss-instruct-sc2-exec-filter-50k": {
        "instruction": "Write `double(x)` that returns twice x.", "prompt": "Create a coding problem.",
        "response": "```python\ndef double(x):\n    return 2 * x\n```\n\n```python\nassert double(2) == 4\n```"},
    "alpaca_gpt4_zh": {"instruction": "写一首关于春天的诗", "input": "", "output": "春风……"},
    "Magpie-Qwen2-Pro-200K-Chinese": {"uuid": "zh-0001", "instruction": "写一首关于大海的诗",
                                      "task_category": "Creative writing"},
}
# The column that holds each dataset's prompt text.
TEXT = {"UltraFeedback": "instruction", "Magpie-Pro-DPO-100K-v0.1": "instruction", "HelpSteer2": "prompt",
        "OpenMathInstruct-2": "problem", "leetcode": "content", "self-oss-instruct-sc2-exec-filter-50k": "instruction",
        "alpaca_gpt4_zh": "instruction", "Magpie-Qwen2-Pro-200K-Chinese": "instruction"}
NAMES = list(DATASETS)
assert set(VALID) == set(NAMES) == set(TEXT)


def write_fixture(folder: Path, name: str, rows: list) -> Path:
    """Rows as JSONL lines; a `bytes` item is written as that raw line."""
    path = folder / DATASETS[name].fixture_name
    with open(path, "wb") as fh:
        for row in rows:
            fh.write(row if isinstance(row, bytes) else json.dumps(row, ensure_ascii=False).encode())
            fh.write(b"\n")
    return path


def cfg(tmp_path: Path, name: str) -> PromptsConfig:
    return PromptsConfig(run_dir=str(tmp_path / "run"), prompts_fixtures_dir=str(tmp_path / "fx"),
                         prompts_datasets=[name])


@pytest.fixture
def fx(tmp_path):
    (tmp_path / "fx").mkdir()
    return tmp_path / "fx"


@pytest.mark.parametrize("name", NAMES)
def test_the_valid_row_of_every_dataset_is_kept(tmp_path, fx, name):
    write_fixture(fx, name, [VALID[name]])
    table = run(cfg(tmp_path, name))["selection"].iloc[0]
    assert (table["read"], table["kept"]) == (1, 1)


# ---------------------------------------------------------------------------------------------------------------
# errors: (kind, how row 1 is broken, the column the message must name)

def _missing(name, row):
    del row[TEXT[name]]
    return row


def _null(name, row):
    return {**row, TEXT[name]: None}


def _wrong_type(name, row):
    return {**row, TEXT[name]: ["not", "a", "string"]}


def _not_utf8(name, row):
    marker = "MARKER-TEXT"
    line = json.dumps({**row, TEXT[name]: marker}, ensure_ascii=False).encode()
    return line.replace(marker.encode(), b"caf\xe9 \xff\xfe")  # latin-1 bytes inside the prompt


def _bad_json(name, row):
    return json.dumps(row, ensure_ascii=False).encode()[:-5]  # a truncated line


def _not_object(name, row):
    return [row[TEXT[name]]]


def _wrong_id_type(name, row):
    column = DATASETS[name].id_column or TEXT[name]
    return {**row, column: 3.5}


ERRORS = {
    "missing_column": (_missing, "missing column '{col}'"),
    "null": (_null, "column '{col}' must be str, got null"),
    "wrong_type": (_wrong_type, "column '{col}' must be str, got list"),
    "not_utf8": (_not_utf8, "field '{col}': bytes that are not UTF-8"),
    "bad_json": (_bad_json, "is not valid JSON"),
    "not_object": (_not_object, "expected an object with columns"),
    "wrong_id_type": (_wrong_id_type, "column '{id}' must be"),
}


@pytest.mark.parametrize("kind", list(ERRORS))
@pytest.mark.parametrize("name", NAMES)
def test_a_bad_row_is_an_error_naming_dataset_file_row_and_field_and_nothing_is_damaged(tmp_path, fx, name, kind):
    break_row, expected = ERRORS[kind]
    # a previous good run's outputs must survive the failing one byte for byte
    write_fixture(fx, name, [VALID[name]])
    run(cfg(tmp_path, name))
    step_dir = tmp_path / "run" / "01_prompts"
    before = {p.name: p.read_bytes() for p in step_dir.iterdir()}

    bad = break_row(name, copy.deepcopy(VALID[name]))
    path = write_fixture(fx, name, [VALID[name], bad])
    with pytest.raises(SchemaError) as err:
        run(cfg(tmp_path, name))
    message = str(err.value)
    col = TEXT[name]
    id_col = DATASETS[name].id_column or TEXT[name]
    assert message.startswith(name), message
    assert str(path) in message and "row 1" in message and "line 2" in message, message
    assert expected.format(col=col, id=id_col) in message, message
    assert {p.name: p.read_bytes() for p in step_dir.iterdir()} == before  # nothing written, no temp file left


# ---------------------------------------------------------------------------------------------------------------
# counted drops: (kind, the rows after the valid one, the selection.csv column that counts them)

def _with_text(name, row, text, **extra):
    row = {**row, TEXT[name]: text, **extra}
    if name == "alpaca_gpt4_zh":
        row["input"] = ""
    return row


def _other_id(name, row):
    column = DATASETS[name].id_column
    return {column: (row[column] + 1) if isinstance(row[column], int) else row[column] + "-b"} if column else {}


DROPS = {
    "empty_text": (lambda n, r: [_with_text(n, r, "", **_other_id(n, r))], "dropped_empty"),
    "whitespace_text": (lambda n, r: [_with_text(n, r, " \n\t ", **_other_id(n, r))], "dropped_empty"),
    "prompt_1MB": (lambda n, r: [_with_text(n, r, "word " * (2**20 // 5), **_other_id(n, r))], "dropped_too_long"),
    # the same row twice: the kit's prompt_id (dataset + normalized text) repeats
    "duplicate_row": (lambda n, r: [copy.deepcopy(r)], "dropped_duplicate"),
    # the same text in other case (leetcode: its example markup is case-sensitive) and spacing, under a new id
    "duplicate_text": (lambda n, r: [_with_text(n, r, "  " + (r[TEXT[n]] if n == "leetcode" else r[TEXT[n]].upper())
                                                .replace(" ", "   ") + " ", **_other_id(n, r))],
                       "dropped_duplicate"),
}


@pytest.mark.parametrize("kind", list(DROPS))
@pytest.mark.parametrize("name", NAMES)
def test_a_bad_row_that_can_be_skipped_is_dropped_and_counted(tmp_path, fx, name, kind):
    extra, column = DROPS[kind]
    write_fixture(fx, name, [VALID[name], *extra(name, copy.deepcopy(VALID[name]))])
    result = run(cfg(tmp_path, name))
    row = result["selection"].iloc[0]
    assert (row["read"], row[column], row["kept"]) == (2, 1, 1), row.to_dict()
    written = pd.read_csv(tmp_path / "run" / "01_prompts" / "selection.csv").iloc[0]
    assert written[column] == 1
    prompts = pd.read_parquet(tmp_path / "run" / "01_prompts" / "prompts.parquet")
    assert len(prompts) == 1 and prompts.prompt_id.is_unique
    assert prompts.prompt.str.len().max() <= MAX_PROMPT_CHARS


@pytest.mark.parametrize("name", [n for n in NAMES if DATASETS[n].id_column])
def test_a_repeated_dataset_id_with_other_text_is_dropped_and_counted(tmp_path, fx, name):
    other = _with_text(name, VALID[name], "Describe the history of the Silk Road" if DATASETS[name].language == "en"
                       else "介绍丝绸之路的历史")
    if name == "leetcode":
        other["content"] = VALID[name]["content"].replace("Return twice", "Give back double")
    write_fixture(fx, name, [VALID[name], other])
    row = run(cfg(tmp_path, name))["selection"].iloc[0]
    assert (row["read"], row["dropped_duplicate_id"], row["kept"]) == (2, 1, 1)


def test_hub_rows_get_the_same_checks(monkeypatch, tmp_path):
    """Rows from `datasets.load_dataset` (a list of dicts here) go through the same check: row and column named."""
    import fusechat_utils.prompt_sources as sources

    rows = [VALID["UltraFeedback"], {**VALID["UltraFeedback"], "instruction": None}]
    monkeypatch.setattr(sources, "load_rows", lambda spec, *a: (rows, f"hub:{spec.hf_id}[train]"))
    monkeypatch.setattr("fusechat_utils.prompts.load_rows", sources.load_rows)
    with pytest.raises(SchemaError, match=r"UltraFeedback \(hub:openbmb/UltraFeedback\[train\]\) row 1: "
                                          r"column 'instruction' must be str, got null"):
        run(PromptsConfig(run_dir=str(tmp_path), prompts_source="hub", prompts_datasets=["UltraFeedback"]))


# ---------------------------------------------------------------------------------------------------------------
# params: (file, key, bad value, what the message must say); every case names the key and the file

PARAM_CASES = [
    # wrong type
    ("common", "seed", "zero", r"key 'seed' must be int, got 'zero'"),
    ("01_prompts", "prompts_datasets", "UltraFeedback", r"key 'prompts_datasets' must be list"),
    ("02_sampling", "sample_batch_size", "big", r"key 'sample_batch_size' must be int"),
    ("02_sampling", "sample_sources", {"name": "x"}, r"key 'sample_sources' must be list"),
    ("03_scoring", "score_trust_remote_code", "yes", r"key 'score_trust_remote_code' must be bool"),
    ("04_pairs", "pairs_sft_ratio", "0.4", r"key 'pairs_sft_ratio' must be float"),
    ("05_sft", "sft_learning_rate", "2e-5", r"key 'sft_learning_rate' must be float.*write it with a dot"),
    ("06_dpo", "dpo_beta", [10], r"key 'dpo_beta' must be float"),
    ("07_eval", "eval_benchmarks", "toy", r"key 'eval_benchmarks' must be list"),
    # impossible values
    ("02_sampling", "sample_batch_size", -1, r"key 'sample_batch_size' must be >= 1, got -1"),
    ("02_sampling", "sample_workers", 0, r"key 'sample_workers' must be >= 1"),
    ("02_sampling", "sample_n_general", -2, r"key 'sample_n_general' must be >= 0"),
    ("02_sampling", "sample_num_shards", 0, r"key 'sample_num_shards' must be >= 1"),
    ("02_sampling", "sample_shard_index", 3, r"key 'sample_shard_index' \(3\) must be in \[0, sample_num_shards=1\)"),
    ("02_sampling", "sample_gpu_memory_utilization", 1.5, r"sample_gpu_memory_utilization' must be in \(0, 1\]"),
    ("02_sampling", "sample_dtype", "float8", r"key 'sample_dtype' must be one of"),
    ("02_sampling", "sample_backend", "tgi", r"sample_backend must be 'hf' or 'vllm'"),
    ("03_scoring", "score_batch_size", 0, r"key 'score_batch_size' must be >= 1"),
    ("03_scoring", "score_code_timeout_s", -1.0, r"key 'score_code_timeout_s' must be > 0"),
    ("04_pairs", "pairs_sft_ratio", 1.5, r"key 'pairs_sft_ratio' must be in \[0, 1\], got 1.5"),
    ("04_pairs", "pairs_sft_ratio", -0.1, r"key 'pairs_sft_ratio' must be in \[0, 1\], got -0.1"),
    ("04_pairs", "pairs_gap_max", 0.01, r"key 'pairs_gap_min' \(0.05\) must be <= key 'pairs_gap_max' \(0.01\)"),
    ("04_pairs", "pairs_gap_min", float("nan"), r"key 'pairs_gap_min' must be a finite number"),
    ("04_pairs", "pairs_gap_tol", -1e-6, r"key 'pairs_gap_tol' must be >= 0"),
    ("04_pairs", "pairs_pairing", "both", r"key 'pairs_pairing' must be one of"),
    ("05_sft", "sft_global_batch_size", -32, r"key 'sft_global_batch_size' must be >= 1"),
    ("05_sft", "sft_per_device_train_batch_size", 0, r"key 'sft_per_device_train_batch_size' must be >= 1"),
    ("05_sft", "sft_per_device_train_batch_size", 24,
     r"key 'sft_global_batch_size' \(32\) must be a multiple of 'sft_per_device_train_batch_size'"),
    ("05_sft", "sft_learning_rate", 0.0, r"key 'sft_learning_rate' must be > 0"),
    ("05_sft", "sft_warmup_ratio", 1.5, r"key 'sft_warmup_ratio' must be in \[0, 1\]"),
    ("05_sft", "sft_max_steps", 0, r"key 'sft_max_steps' must be -1 \(use the epochs\) or >= 1"),
    ("06_dpo", "dpo_beta", 0.0, r"key 'dpo_beta' must be > 0"),
    ("06_dpo", "dpo_eval_fraction", 1.0, r"key 'dpo_eval_fraction' must be < 1"),
    ("06_dpo", "dpo_num_train_epochs", float("inf"), r"key 'dpo_num_train_epochs' must be a finite number"),
    ("07_eval", "eval_batch_size", -64, r"key 'eval_batch_size' must be >= 1"),
    ("07_eval", "eval_backend", "tgi", r"eval_backend must be 'transformers' or 'vllm'"),
    ("01_prompts", "prompts_source", "web", r"key 'prompts_source' must be 'hub' or 'fixtures'"),
    ("01_prompts", "prompts_max_per_dataset", {"leetcode": -5}, r"the cap of leetcode must be an int >= 0"),
    ("common", "seed", -1, r"key 'seed' must be >= 0"),
]


@pytest.fixture
def toy_copy(tmp_path):
    """A user's own profile folder: a copy of params/toy/ to break on purpose."""
    folder = tmp_path / "profile"
    folder.mkdir()
    for f in (PARAMS_DIR / "toy").glob("*.yaml"):
        (folder / f.name).write_text(f.read_text())
    return folder


def set_key(folder: Path, stem: str, key: str, value) -> Path:
    path = folder / f"{stem}.yaml"
    if isinstance(value, str) and re.fullmatch(r"\d+e-\d+", value):  # written bare, as a user would: YAML -> str
        text = re.sub(rf"^{key}:.*$", f"{key}: {value}", path.read_text(), flags=re.M)
        path.write_text(text)
        assert yaml.safe_load(text)[key] == value
        return path
    data = yaml.safe_load(path.read_text())
    data[key] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


@pytest.mark.parametrize("stem,key,value,expected", PARAM_CASES,
                         ids=[f"{c[1]}={c[2]!r}"[:60] for c in PARAM_CASES])
def test_a_bad_param_names_the_key_and_the_file(toy_copy, stem, key, value, expected):
    path = set_key(toy_copy, stem, key, value)
    with pytest.raises(ParamError) as err:
        load_profile(toy_copy)
    message = str(err.value)
    assert str(path) in message and re.search(expected, message), message
    # the same value through --set names --set instead of the file
    if stem != "05_sft" or value != "2e-5":
        clean = toy_copy.parent / "clean"
        if not clean.exists():
            clean.mkdir()
            for f in (PARAMS_DIR / "toy").glob("*.yaml"):
                (clean / f.name).write_text(f.read_text())
        with pytest.raises(ParamError, match=r"--set"):
            load_profile(clean, {key: value})


@pytest.mark.parametrize("stem", ["common", *STEPS])
def test_an_unknown_key_in_any_file_names_the_key_and_the_file(toy_copy, stem):
    path = toy_copy / f"{stem}.yaml"
    path.write_text(path.read_text() + "sft_learnig_rate: 0.1\n")
    with pytest.raises(ParamError, match=rf"{re.escape(str(path))}: unknown key\(s\) \['sft_learnig_rate'\]"):
        load_profile(toy_copy)


def test_config_classes_reject_impossible_values_directly():
    from fusechat_utils.pairs import PairsConfig

    with pytest.raises(ParamError, match=r"pairs_gap_min.*must be <= key 'pairs_gap_max'"):
        PairsConfig(pairs_gap_min=0.5, pairs_gap_max=0.1)
    with pytest.raises(ParamError, match=r"notebook parameters: key 'pairs_sft_ratio' must be in \[0, 1\]"):
        PairsConfig.from_params({**PairsConfig().__dict__, "pairs_sft_ratio": 2.0})


@pytest.mark.parametrize("spec", ["07-01", "04-02", "8", "01-09", "0", "ab", "01-", "-03", "1-2-3", "03_pairs"])
def test_a_bad_step_range_is_an_error_naming_it(spec):
    with pytest.raises(StepsError, match=rf"--steps {re.escape(repr(spec))}"):
        select_steps(spec)


def test_good_step_ranges():
    assert select_steps("07-01".split("-")[1] + "-07") == list(STEPS)
    assert select_steps("3") == ["03_scoring"] and select_steps("05_sft-06") == ["05_sft", "06_dpo"]
    assert select_steps(None) == select_steps("") == list(STEPS)


# model paths: a local-looking path that does not exist is an error naming the key and the file; hub ids pass
PATH_CASES = [
    ("common", "target_model", "outputs/no_such_run/model", "target_model"),
    ("common", "target_model", "/nonexistent/Llama-3.1-8B", "target_model"),
    ("common", "target_model", "params/no_such_model", "target_model"),  # 'params/' exists: a partly real path
    ("03_scoring", "score_reward_model", "./models/armorm", "score_reward_model"),
    ("05_sft", "sft_accelerate_config", "params/accelerate/nope.yaml", "sft_accelerate_config"),
    ("02_sampling", "sample_sources", "../models/src", r"sample_sources\[1\]\.model"),
    ("07_eval", "eval_models", {"sft": "/elsewhere/sft-model"}, r"eval_models\.sft"),
]


@pytest.fixture
def paper_copy(tmp_path):
    """llama3.1-8b (an overlay on params/paper/) as one self-contained folder: every key in its step's file."""
    from fusechat_utils.defaults import write_flat_profile

    return write_flat_profile("llama3.1-8b", tmp_path / "paper")


@pytest.mark.parametrize("stem,key,value,label", PATH_CASES, ids=[c[2] if isinstance(c[2], str) else c[1]
                                                                   for c in PATH_CASES])
def test_a_local_model_path_that_does_not_exist_names_the_key_and_the_file(paper_copy, stem, key, value, label):
    load_profile(paper_copy, steps=list(STEPS))  # the paper profile's hub ids pass
    if key == "sample_sources":
        sources = yaml.safe_load((paper_copy / f"{stem}.yaml").read_text())[key]
        sources[1]["model"] = value
        value = sources
    path = set_key(paper_copy, stem, key, value)
    load_profile(paper_copy)  # paths are checked only for the steps about to run
    with pytest.raises(ParamError) as err:
        load_profile(paper_copy, steps=list(STEPS))
    message = str(err.value)
    assert str(path) in message and re.search(rf"key '{label}' is the local path .* which does not exist", message)


@pytest.mark.parametrize("value", ["meta-llama/Llama-3.1-8B-Instruct", "RLHFlow/ArmoRM-Llama3-8B-v0.1", "gpt2",
                                   "params/accelerate"])
def test_hub_ids_and_existing_local_paths_pass(paper_copy, value):
    set_key(paper_copy, "common", "target_model", value)
    assert load_profile(paper_copy, steps=list(STEPS))["target_model"] == value


def test_from_params_checks_model_paths_too(tmp_path):
    from fusechat_utils.train_sft import SFTStepConfig

    values = {**SFTStepConfig().__dict__, "target_model": "outputs/no_such_run/model"}
    with pytest.raises(ParamError, match=r"params for 05_sft: key 'target_model' is the local path"):
        SFTStepConfig.from_params(values, source="params for 05_sft")


# ---------------------------------------------------------------------------------------------------------------
# parquet between steps: the reading step names the file and the step that wrote it


def good_parquet(path: Path, columns=("prompt_id", "dataset", "category", "prompt", "reference_response")) -> bytes:
    df = pd.DataFrame({c: [f"{c}-{i}" for i in range(50)] for c in columns})
    df["category"] = "general"
    io.write_parquet(path, df)
    return path.read_bytes()


BREAKS = {
    "truncated": lambda data: data[: len(data) // 2],
    "tail_cut": lambda data: data[:-9],
    "garbage": lambda data: b"not a parquet file at all\n" * 10,
    "empty_file": lambda data: b"",
    "flipped_footer": lambda data: data[:-8] + b"\x00" * 4 + data[-4:],
}


@pytest.mark.parametrize("how", list(BREAKS))
def test_a_corrupt_prompts_parquet_names_the_file_and_its_step(tmp_path, how):
    from fusechat_utils.sampling import read_prompts

    path = tmp_path / "01_prompts" / "prompts.parquet"
    path.parent.mkdir()
    path.write_bytes(BREAKS[how](good_parquet(path)))
    before = path.read_bytes()
    with pytest.raises(io.ArtifactError, match=rf"{re.escape(str(path))}: not a readable parquet file .*"
                                                rf"written by step 01_prompts: re-run step 01_prompts"):
        read_prompts(tmp_path)
    assert path.read_bytes() == before  # left as it was, for inspection


@pytest.mark.parametrize("how", list(BREAKS))
def test_a_corrupt_scored_parquet_stops_04_pairs_before_it_writes(tmp_path, how):
    from fusechat_utils.pairs import PairsConfig
    from fusechat_utils.pairs import run as pairs_run

    path = tmp_path / "03_scoring" / "scored.parquet"
    path.parent.mkdir()
    path.write_bytes(BREAKS[how](good_parquet(path, columns=("prompt_id", "response"))))
    with pytest.raises(io.ArtifactError, match=rf"{re.escape(str(path))}: .*written by step 03_scoring"):
        pairs_run(PairsConfig(run_dir=str(tmp_path)))
    assert not (tmp_path / "04_pairs").exists() or not any((tmp_path / "04_pairs").iterdir())


def test_a_missing_or_incomplete_parquet_names_the_file_the_columns_and_the_step(tmp_path):
    with pytest.raises(io.ArtifactMissing, match=r"02_sampling/responses\.parquet: not found; run step 02_sampling"):
        io.read_parquet(tmp_path / "02_sampling" / "responses.parquet")
    path = tmp_path / "02_sampling" / "responses.parquet"
    good_parquet(path, columns=("prompt_id", "response"))
    with pytest.raises(io.ArtifactError, match=r"responses\.parquet: missing column\(s\) \['rm_score'\]; "
                                               r"written by step 02_sampling"):
        io.read_parquet(path, required=["prompt_id", "rm_score"])
    assert list(io.read_parquet(path, required=["prompt_id"]).columns) == ["prompt_id", "response", "category"]


# ---------------------------------------------------------------------------------------------------------------
# a disk that fills during a write: the previous file stays, no temp file is left, the error names the file

def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _parquet_fills(path, monkeypatch):
    def partial(self, target, *a, **k):
        Path(target).write_bytes(b"PAR1 half a file")
        enospc()
    monkeypatch.setattr(pd.DataFrame, "to_parquet", partial)
    io.write_parquet(path, pd.DataFrame({"a": [1, 2, 3]}))


def _jsonl_fills(path, monkeypatch):
    def rows():
        yield {"a": 1}
        yield {"a": 2}
        enospc()
    io.write_jsonl(path, rows())


def _json_fills(path, monkeypatch):
    real = Path.write_text

    def partial(self, text, *a, **k):
        real(self, text[: len(text) // 2])
        enospc()
    monkeypatch.setattr(Path, "write_text", partial)
    io.write_json(path, {"new": list(range(100))})


def _csv_fills(path, monkeypatch):
    with io.atomic_path(path) as tmp:
        tmp.write_text("a,b\n1,")
        raise OSError(errno.EDQUOT, "Disk quota exceeded")


def _library_fills(path, monkeypatch):
    with io.atomic_path(path) as tmp:  # pyarrow wraps the OS error in its own message, without errno
        tmp.write_bytes(b"x" * 100)
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")


FILLS = {"parquet": _parquet_fills, "jsonl": _jsonl_fills, "json": _json_fills, "csv_quota": _csv_fills,
         "library_message": _library_fills}


@pytest.mark.parametrize("kind", list(FILLS))
def test_a_disk_that_fills_during_a_write_leaves_the_previous_file_and_no_temp(tmp_path, monkeypatch, kind):
    path = tmp_path / "03_scoring" / "artifact"
    path.parent.mkdir()
    path.write_bytes(b"previous complete version")
    with pytest.raises(io.DiskFullError) as err:
        FILLS[kind](path, monkeypatch)
    assert str(path) in str(err.value) and "left intact" in str(err.value)
    assert err.value.errno in (errno.ENOSPC, errno.EDQUOT)
    assert path.read_bytes() == b"previous complete version"
    assert os.listdir(path.parent) == ["artifact"]


def test_a_real_file_size_limit_mid_write_keeps_the_previous_parquet(tmp_path):
    """RLIMIT_FSIZE in a subprocess: the kernel refuses the write (EFBIG) halfway through a real pyarrow write."""
    path = tmp_path / "02_sampling" / "responses.parquet"
    previous = good_parquet(path)
    script = f"""
import resource, signal, sys
import numpy as np, pandas as pd
from fusechat_utils import io
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
df = pd.DataFrame({{"x": np.random.default_rng(0).random(200_000)}})  # ~1.6 MB of incompressible floats
try:
    io.write_parquet({str(path)!r}, df)
except io.DiskFullError as err:
    print("DISKFULL", err)
    sys.exit(3)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"DISKFULL {path}: no space left (disk full, quota or file-size limit) while writing it" in proc.stdout
    assert path.read_bytes() == previous
    assert os.listdir(path.parent) == ["responses.parquet"]
