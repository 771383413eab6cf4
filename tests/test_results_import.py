"""`fusechat import-results`: the documented file format, validation naming file/row/field, the atomic merge into
results.csv (same (stage, benchmark, metric) replaced, the rest kept) and step 07 keeping imported rows."""

import json

import pandas as pd
import pytest

from fusechat_utils.cli import main
from fusechat_utils.evaluation import results_import as ri
from fusechat_utils.evaluation import tables
from fusechat_utils.evaluation.step import RESULT_COLUMNS
from fusechat_utils.runlock import RunLocked, run_lock

HEADER = "model,stage,benchmark,metric,value,n,stderr,source\n"


@pytest.fixture()
def run_dir(tmp_path):
    rows = [["m", "base", "GSM8K", "exact_match", 80.0, 1319, 1.1],
            ["m", "sft", "GSM8K", "exact_match", 85.0, 1319, 1.0],
            ["m", "sft", "LiveBench 0831", "score", 1.0, 5, 0.5]]
    (tmp_path / "run" / "07_eval").mkdir(parents=True)
    pd.DataFrame(rows, columns=RESULT_COLUMNS).to_csv(tmp_path / "run" / "07_eval" / "results.csv", index=False)
    return tmp_path / "run"


def results(run_dir):
    return pd.read_csv(run_dir / "07_eval" / "results.csv")


def test_a_csv_replaces_rows_with_the_same_key_and_keeps_the_rest(run_dir, tmp_path, capsys):
    f = tmp_path / "livebench.csv"
    f.write_text(HEADER + "m-sft,sft,LiveBench 0831,score,30.2,1000,,livebench 2024-08-31 release, run 2025-01-02\n"
                 .replace("release, run", "release; run") +
                 "m-dpo,dpo,LiveBench 0831,score,32.0,,0.4,livebench\n")
    assert main(["import-results", "--run-dir", str(run_dir), str(f)]) == 0
    assert "imported 2 row(s)" in capsys.readouterr().out
    out = results(run_dir)
    assert list(out.columns) == RESULT_COLUMNS
    live = out[out.benchmark == "LiveBench 0831"].set_index("stage")
    assert live.loc["sft", "value"] == 30.2 and live.loc["sft", "n"] == 1000 and pd.isna(live.loc["sft", "stderr"])
    assert live.loc["dpo", "value"] == 32.0 and len(out) == 4  # the old sft LiveBench row replaced, GSM8K kept
    assert out[out.benchmark == "GSM8K"].value.tolist() == [80.0, 85.0]
    ledger = pd.read_csv(run_dir / "07_eval" / ri.LEDGER)
    assert ledger.source.tolist() == ["livebench 2024-08-31 release; run 2025-01-02", "livebench"]
    assert ledger.imported_from.str.endswith("livebench.csv").all()


def test_json_with_a_file_level_source_and_reimport_replaces(run_dir, tmp_path):
    f = tmp_path / "alpaca.json"
    f.write_text(json.dumps({"source": "alpaca_eval 0.6.6 weighted_alpaca_eval_gpt4_turbo", "rows": [
        {"model": "m", "stage": "sft", "benchmark": "AlpacaEval-2 (LC %)", "metric": "lc_win_rate", "value": 41.3,
         "n": 805, "stderr": 1.2},
        {"model": "m", "stage": "sft", "benchmark": "MT-Bench", "metric": "score_1_10", "value": 8.54, "n": 80,
         "stderr": None, "source": "fschat gen_judgment"}]}))
    ri.import_results(run_dir, f)
    f.write_text(json.dumps([{"model": "m", "stage": "sft", "benchmark": "MT-Bench", "metric": "score_1_10",
                              "value": 8.6, "n": 80, "stderr": 0.1, "source": "rerun"}]))
    ri.import_results(run_dir, f)
    out = results(run_dir).set_index(["stage", "benchmark"])
    assert out.loc[("sft", "MT-Bench"), "value"] == 8.6 and out.loc[("sft", "AlpacaEval-2 (LC %)"), "value"] == 41.3
    ledger = pd.read_csv(run_dir / "07_eval" / ri.LEDGER)
    assert len(ledger) == 2 and set(ledger.source) == {"alpaca_eval 0.6.6 weighted_alpaca_eval_gpt4_turbo", "rerun"}


@pytest.mark.parametrize("body,message", [
    (HEADER + "m,sft,GSM8K,exact_match,50,10,1,x\nm,sft,LiveBench,score,30,,,x\n",
     r"bad\.csv: row 2 \(line 3\): field 'benchmark' is 'LiveBench', not one of the paper's benchmarks"),
    (HEADER + "m,sft,GSM8K,exact_match,120,10,1,x\n",
     r"bad\.csv: row 1 \(line 2\): field 'value' is 120, out of range \[0, 100\] for GSM8K"),
    (HEADER + "m,sft,MT-Bench,score_1_10,54,80,,x\n",
     r"row 1 \(line 2\): field 'value' is 54, out of range \[0, 10\] for MT-Bench \(a 0-10 judge score\)"),
    ("model,stage,benchmark,metric,value,n,source\nm,sft,GSM8K,exact_match,50,10,x\n",
     r"bad\.csv: header \(line 1\): missing column\(s\) stderr"),
    (HEADER + "m,sft,GSM8K,exact_match,fifty,10,1,x\n", r"row 1 \(line 2\): field 'value' is 'fifty', not a number"),
    (HEADER + "m,sft,GSM8K,exact_match,50,2.5,1,x\n", r"row 1 \(line 2\): field 'n' is '2.5', not a positive int"),
    (HEADER + "m,sft,GSM8K,exact_match,50,10,-1,x\n", r"row 1 \(line 2\): field 'stderr' is -1, must be >= 0"),
    (HEADER + "m,sft,GSM8K,exact_match,50,10,1,\n", r"row 1 \(line 2\): field 'source' must be a non-empty string"),
    (HEADER + "m,sft,GSM8K,acc,50,10,1,x\nm,sft,GSM8K,acc,51,10,1,y\n",
     r"row 2 \(line 3\): \(stage, benchmark, metric\) = \('sft', 'GSM8K', 'acc'\) repeats row 1"),
    ('[{"model": "m", "stage": "sft", "benchmark": "GSM8K", "metric": "acc", "value": 5, "n": 1, "source": "x"}]',
     r"bad\.csv: row 1: field 'stderr' is missing"),
])
def test_validation_names_the_file_row_and_field_and_leaves_results_untouched(run_dir, tmp_path, body, message):
    before = (run_dir / "07_eval" / "results.csv").read_bytes()
    f = tmp_path / "bad.csv"
    f.write_text(body)
    with pytest.raises(ri.ResultsImportError, match=message):
        ri.import_results(run_dir, f)
    assert (run_dir / "07_eval" / "results.csv").read_bytes() == before
    assert not (run_dir / "07_eval" / ri.LEDGER).exists()


def test_the_cli_prints_a_validation_error_as_one_line(run_dir, tmp_path, capsys):
    f = tmp_path / "x.csv"
    f.write_text(HEADER + "m,sft,HumanEval+,pass@1,50,164,,evalplus\n")
    assert main(["import-results", "--run-dir", str(run_dir), str(f)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fusechat import-results: ") and "field 'benchmark' is 'HumanEval+'" in err
    assert main(["import-results", "--run-dir", str(run_dir), str(tmp_path / "none.csv")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_a_busy_run_folder_is_refused(run_dir, tmp_path):
    f = tmp_path / "ok.csv"
    f.write_text(HEADER + "m,sft,GSM8K,exact_match,50,10,1,x\n")
    with run_lock(run_dir), pytest.raises(RunLocked):
        ri.import_results(run_dir, f)


def test_import_before_step_07_ran_and_step_07_keeps_imported_rows(tmp_path):
    f = tmp_path / "ok.csv"
    f.write_text(HEADER + "m,dpo,LiveBench 0831,score,33.2,,,livebench\n")
    run_dir = tmp_path / "fresh"
    ri.import_results(run_dir, f)
    assert results(run_dir).value.tolist() == [33.2]
    # what step 07 does when it rewrites results.csv from its parts: the imported rows are laid over again
    computed = pd.DataFrame([["m", "dpo", "LiveBench 0831", "score", 1.0, 1, 0.0],
                             ["m", "dpo", "GSM8K", "exact_match", 88.0, 1319, 0.9]], columns=RESULT_COLUMNS)
    merged = ri.apply_imports(run_dir / "07_eval", computed)
    assert list(merged.columns) == RESULT_COLUMNS
    assert merged.set_index("benchmark").value.to_dict() == {"GSM8K": 88.0, "LiveBench 0831": 33.2}
    assert ri.apply_imports(tmp_path / "nothing", computed) is computed


def test_imported_rows_fill_the_benchmark_table(run_dir, tmp_path):
    paper = tables.paper_benchmarks()
    # GSM8K's and LiveBench's metrics are those results.csv has: those rows are replaced; the rest are new
    metric = {"GSM8K": "exact_match", "LiveBench 0831": "score"}
    rows = [{"model": "m", "stage": s, "benchmark": b, "metric": metric.get(b, "v"), "value": 5.0, "n": "", "stderr": "",
             "source": "elsewhere"} for s in ("base", "sft") for b in paper]
    f = tmp_path / "all.json"
    f.write_text(json.dumps(rows))
    ri.import_results(run_dir, f)
    table = tables.our_table(results(run_dir), tables.average_set(results(run_dir)))
    assert table.loc["Average", "ours: base"] == table.loc["Average", "ours: SFT"] == 5.0
    assert len(results(run_dir)) == 2 * 14

