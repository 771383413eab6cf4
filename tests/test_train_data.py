"""05/06 training data: the released FuseChat-3.0 schema and TRL's conversational formats give the same training
rows, bad rows are named, hub ids go to datasets.load_dataset, and `fusechat export-data` round-trips a run's sets."""

import json

import pandas as pd
import pytest
from test_train_sft import build_pairs

from fusechat_utils.cli import main
from fusechat_utils.config import ParamError, load_profile
from fusechat_utils.errors import UserError
from fusechat_utils.train_sft import SFTStepConfig, sft_dataset
from fusechat_utils.train_data import (
    DPO_EXPORT, SFT_EXPORT, DataError, Source, dpo_example, dpo_rows, resolve, sft_example, sft_rows,
)
from fusechat_utils.train_dpo import dpo_splits

USER, ANSWER, WORSE = "what is 2 + 2", "answer 4", "answer 5"
SFT_WANT = {"prompt": [{"role": "user", "content": USER}], "completion": [{"role": "assistant", "content": ANSWER}]}
DPO_WANT = {"prompt": [{"role": "user", "content": USER}], "chosen": [{"role": "assistant", "content": ANSWER}],
            "rejected": [{"role": "assistant", "content": WORSE}]}


def msg(role, text):
    return {"role": role, "content": text}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_released_schema_and_trl_formats_give_the_same_training_rows():
    released_sft = {"dataset": "openmathinstruct2", "source_model": "Qwen2.5-72B-Instruct",
                    "conversations": [{"from": "human", "value": USER}, {"from": "gpt", "value": ANSWER}]}
    for row in (released_sft, {"messages": [msg("user", USER), msg("assistant", ANSWER)]},
                {"prompt": [msg("user", USER)], "completion": [msg("assistant", ANSWER)]},
                {"prompt": USER, "completion": ANSWER}):
        assert sft_example(row, "f row 0") == SFT_WANT, row
    released_dpo = {"dataset": "ultrafeedback", "source_model": "gemma-2-27b-it", "prompt": [msg("user", USER)],
                    "chosen": [msg("assistant", ANSWER)], "rejected": [msg("assistant", WORSE)]}
    implicit = {"chosen": [msg("user", USER), msg("assistant", ANSWER)],
                "rejected": [msg("user", USER), msg("assistant", WORSE)]}
    for row in (released_dpo, implicit, {"prompt": USER, "chosen": ANSWER, "rejected": WORSE}):
        assert dpo_example(row, "f row 0") == DPO_WANT, row
    system = {"messages": [msg("system", "be brief"), msg("user", USER), msg("assistant", ANSWER)]}
    assert sft_example(system, "f row 0")["prompt"] == [msg("system", "be brief"), msg("user", USER)]


@pytest.mark.parametrize("row, error", [
    ({"conversations": [{"from": "robot", "value": "x"}, {"from": "gpt", "value": "y"}]},
     "field 'conversations' message 0 has unknown role 'robot'"),
    ({"messages": [msg("user", USER)]}, "field 'messages' must end with an assistant"),
    ({"messages": [msg("user", USER), {"role": "assistant", "content": None}]}, "field 'messages' message 1 has no "
                                                                                "string content"),
    ({"text": "hello"}, r"no SFT conversation: expected a field 'conversations'.*fields: \['text'\]"),
])
def test_a_bad_sft_row_is_an_error_naming_file_row_line_and_field(tmp_path, row, error):
    path = write_jsonl(tmp_path / "sft.jsonl", [{"messages": [msg("user", USER), msg("assistant", ANSWER)]}, row])
    with pytest.raises(DataError, match=rf"sft\.jsonl row 1 \(line 2\): {error}") as err:
        sft_rows(Source("file", str(path)))
    assert isinstance(err.value, UserError)


def test_bad_dpo_rows_and_files_are_errors_naming_them(tmp_path):
    path = tmp_path / "dpo.json"
    path.write_text(json.dumps([{"prompt": USER, "chosen": ANSWER, "rejected": WORSE},
                                {"prompt": USER, "chosen": [{"text": "x"}], "rejected": WORSE}]))
    with pytest.raises(DataError, match=r"dpo\.json row 1: field 'chosen' message 0 has unknown role None"):
        dpo_rows(Source("file", str(path)))
    path.write_text(json.dumps([{"prompt": USER, "rejected": WORSE}]))
    with pytest.raises(DataError, match=r"dpo\.json row 0: field 'chosen' is missing"):
        dpo_rows(Source("file", str(path)))
    same = [msg("user", USER), msg("assistant", ANSWER)]
    path.write_text(json.dumps([{"chosen": same, "rejected": same}]))
    with pytest.raises(DataError, match="row 0: no field 'prompt'.*implicit prompt"):
        dpo_rows(Source("file", str(path)))
    path.write_text('{"prompt": "a"}\n[1, 2]\n')  # JSON lines in a .json file, as the hub's train.json may be
    with pytest.raises(DataError, match=r"dpo\.json row 1 \(line 2\): expected an object"):
        dpo_rows(Source("file", str(path)))
    pd.DataFrame([{"prompt": [msg("user", USER)], "chosen": [msg("assistant", ANSWER)], "rejected": None}]).to_parquet(
        tmp_path / "dpo.parquet")
    with pytest.raises(DataError, match=r"dpo\.parquet row 0: field 'rejected' is missing"):
        dpo_rows(Source("file", str(tmp_path / "dpo.parquet")))


def test_data_params_are_checked_when_params_load(tmp_path):
    for value in ("data/sft.csv", "not a hub id"):
        with pytest.raises(ParamError, match="key 'sft_data'"):
            SFTStepConfig(sft_data=value)
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(ParamError, match=r"--set: key 'sft_data' is the local file .*nope\.jsonl.*does not exist"):
        load_profile("toy", {"target_model": str(tmp_path), "sft_data": missing}, steps=["05_sft"])
    assert resolve("", tmp_path, "dpo") == Source("run", str(tmp_path / "04_pairs" / "dpo.parquet"))
    assert resolve("FuseAI/FuseChat-3.0-DPO-Data@v1", tmp_path, "dpo") == Source(
        "hub", "FuseAI/FuseChat-3.0-DPO-Data", "v1")


def test_a_hub_id_is_loaded_with_datasets_at_its_revision(monkeypatch, tmp_path):
    import datasets

    calls = []

    def fake_load_dataset(name, config, split, revision):
        calls.append((name, config, split, revision))
        return datasets.Dataset.from_list([{"dataset": "x", "source_model": "s", "prompt": [msg("user", USER)],
                                            "chosen": [msg("assistant", ANSWER)],
                                            "rejected": [msg("assistant", WORSE)]}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    src = resolve("FuseAI/FuseChat-3.0-DPO-Data@abc123", tmp_path, "dpo")
    assert dpo_rows(src) == [DPO_WANT]
    assert calls == [("FuseAI/FuseChat-3.0-DPO-Data", None, "train", "abc123")]
    assert src.describe(tmp_path) == {"source": "hub:FuseAI/FuseChat-3.0-DPO-Data", "config": None,
                                      "revision": "abc123"}
    pushed = resolve("me/fusechat-toy-data:dpo", tmp_path, "dpo")  # a `fusechat push` repo's dpo config
    dpo_rows(pushed)
    assert calls[-1] == ("me/fusechat-toy-data", "dpo", "train", None)


def test_export_then_train_from_the_export_gives_the_same_training_rows(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "export"
    build_pairs(run, n_sft=12, n_dpo=10)
    assert main(["export-data", "--run-dir", str(run), "--out", str(out)]) == 0
    assert "sft.jsonl" in capsys.readouterr().out
    exported = {name: [json.loads(x) for x in (out / f"{name}.jsonl").read_text().splitlines()]
                for name in ("sft", "dpo")}
    assert [list(r) for r in exported["sft"]] == [SFT_EXPORT] * 12  # the released columns only
    assert [list(r) for r in exported["dpo"]] == [DPO_EXPORT] * 10
    own = sft_dataset(resolve("", run, "sft")).to_list()
    assert own == sft_dataset(resolve(str(out / "sft.jsonl"), run, "sft")).to_list() and len(own) == 12
    own_train, own_eval = dpo_splits(resolve("", run, "dpo"), 0.2, seed=3)
    ext_train, ext_eval = dpo_splits(resolve(str(out / "dpo.jsonl"), run, "dpo"), 0.2, seed=3)
    assert own_train.to_list() == ext_train.to_list() and own_eval.to_list() == ext_eval.to_list()
    assert json.loads((out / "export.json").read_text())["schema"] == {"sft": SFT_EXPORT, "dpo": DPO_EXPORT}
