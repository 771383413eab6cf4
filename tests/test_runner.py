"""The papermill runner on step 01: manifest, skip when unchanged, --force, and a failing step's report."""

import json
import shutil
from pathlib import Path

import pytest

from fusechat_utils.cli import main
from fusechat_utils.io import read_json
from fusechat_utils.prompt_sources import DATASETS
from fusechat_utils.runner import StepFailed, run_pipeline

REAL = Path(__file__).parent / "fixtures" / "real_samples"


@pytest.fixture
def fixtures(tmp_path):
    out = tmp_path / "fixtures"
    out.mkdir()
    for name in ["UltraFeedback", "OpenMathInstruct-2"]:
        shutil.copy(REAL / DATASETS[name].fixture_name, out / DATASETS[name].fixture_name)
    return out


def overrides(tmp_path, fixtures, **extra):
    return {"run_dir": str(tmp_path / "run"), "prompts_fixtures_dir": str(fixtures),
            "prompts_datasets": ["UltraFeedback", "OpenMathInstruct-2"], **extra}


@pytest.mark.slow
def test_step_runs_writes_manifest_then_skips_until_inputs_or_params_change(tmp_path, fixtures):
    lines = []
    first = run_pipeline("toy", "01", overrides(tmp_path, fixtures), log=lambda *a, **k: lines.append(a[0]))
    assert [r.status for r in first] == ["ran"]
    step_dir = tmp_path / "run" / "01_prompts"
    manifest = read_json(step_dir / "manifest.json")
    assert manifest["params"]["prompts_fixtures_dir"] == str(fixtures)
    assert set(manifest["outputs"]) == {"prompts.parquet", "selection.csv"}
    assert manifest["packages"]["torch"].startswith("2.13") and manifest["git_commit"]
    assert manifest["wall_time_s"] > 0 and manifest["seeds"] == {"prompts_seed": 0}
    assert "param:prompts_fixtures_dir" in manifest["inputs"]
    assert (step_dir / "01_prompts.ipynb").is_file() and any("01_prompts ran" in x for x in lines)

    assert [r.status for r in run_pipeline("toy", "01", overrides(tmp_path, fixtures), log=print)] == ["skipped"]
    assert [r.status for r in run_pipeline("toy", "01", overrides(tmp_path, fixtures), force=True)] == ["ran"]
    # the run seed belongs to 04-07: a seed sweep reuses the data-building steps
    assert [r.status for r in run_pipeline("toy", "01", overrides(tmp_path, fixtures, seed=5))] == ["skipped"]
    assert [r.status for r in run_pipeline("toy", "01", overrides(tmp_path, fixtures, prompts_seed=5))] == ["ran"]
    # an input file changes -> the step runs again
    path = fixtures / DATASETS["UltraFeedback"].fixture_name
    row = json.loads(path.read_text())
    path.write_text(json.dumps({**row, "instruction": row["instruction"] + " Also, what food?"}) + "\n")
    assert [r.status for r in run_pipeline("toy", "01", overrides(tmp_path, fixtures, prompts_seed=5))] == ["ran"]


@pytest.mark.slow
def test_a_failing_step_names_step_notebook_and_error(tmp_path, fixtures):
    path = fixtures / DATASETS["OpenMathInstruct-2"].fixture_name
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    del rows[0]["problem"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(StepFailed) as err:
        run_pipeline("toy", "01", overrides(tmp_path, fixtures))
    message = str(err.value)
    assert "step 01_prompts failed" in message and "SchemaError" in message and "missing column 'problem'" in message
    assert str(tmp_path / "run" / "01_prompts" / "01_prompts.ipynb") in message
    assert not (tmp_path / "run" / "01_prompts" / "manifest.json").exists()


def test_cli_reports_bad_params_without_a_traceback(capsys):
    assert main(["run", "--profile", "toy", "--steps", "01", "--set", "seed=one"]) == 1
    assert "key 'seed' must be int" in capsys.readouterr().err
    assert main(["run", "--profile", "nope"]) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err


def test_an_identical_step_in_another_run_is_reused_not_rerun(tmp_path, fixtures):
    first = run_pipeline("toy", "01", overrides(tmp_path, fixtures))
    other = {**overrides(tmp_path, fixtures), "run_dir": str(tmp_path / "other")}
    assert [r.status for r in run_pipeline("toy", "01", other)] == ["reused"]
    manifest = read_json(tmp_path / "other" / "01_prompts" / "manifest.json")
    assert manifest["params"]["run_dir"] == str(tmp_path / "other")
    assert manifest["reused_from"] == str((tmp_path / "run" / "01_prompts").resolve())
    original = read_json(tmp_path / "run" / "01_prompts" / "manifest.json")
    assert original["params"]["run_dir"] == str(tmp_path / "run") and first[0].status == "ran"
    assert [r.status for r in run_pipeline("toy", "01", other)] == ["skipped"]


@pytest.mark.slow
def test_a_skipped_step_reruns_when_its_code_packages_or_outputs_changed(tmp_path, fixtures, monkeypatch):
    from fusechat_utils import provenance, runner

    def run(**kw):
        lines = []
        result = run_pipeline("toy", "01", overrides(tmp_path, fixtures), log=lambda *a, **k: lines.append(a[0]))[0]
        return result.status, result.reason, lines[-1]

    # the kit's code as the runner sees it: a copy of the package, edited below
    copy = tmp_path / "kit" / "fusechat_utils"
    shutil.copytree(provenance.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_DIR", copy)
    assert run()[0] == "ran"
    assert run()[:2] == ("skipped", "")
    (copy / "prompts.py").write_text((copy / "prompts.py").read_text() + "\n# edited\n")
    status, reason, line = run()
    assert (status, reason) == ("ran", "code changed: fusechat_utils/prompts.py")
    assert "01_prompts ran (" in line and "code changed: fusechat_utils/prompts.py" in line
    real_versions = provenance.package_versions()
    monkeypatch.setattr(runner, "package_versions", lambda: {**real_versions, "trl": "0.0.1"})
    assert run()[:2] == ("ran", f"packages changed: trl {real_versions['trl']} -> 0.0.1")
    assert run()[:2] == ("skipped", "")
    selection = tmp_path / "run" / "01_prompts" / "selection.csv"
    selection.write_text(selection.read_text().replace("UltraFeedback", "UltraFeedbacc"))
    assert run()[:2] == ("ran", "output edited: selection.csv")
    (tmp_path / "run" / "01_prompts" / "prompts.parquet").unlink()
    assert run()[:2] == ("ran", "output missing: prompts.parquet")
    assert "UltraFeedbacc" not in selection.read_text()


def test_the_code_of_a_step_is_what_its_notebook_imports_transitively():
    from fusechat_utils.provenance import step_code
    from fusechat_utils.steps import notebook_path

    pairs, prompts, evaluation = (set(step_code(notebook_path(s))) for s in ("04_pairs", "01_prompts", "07_eval"))
    assert "fusechat_utils/pairs.py" in pairs and "fusechat_utils/pairs.py" not in prompts
    assert {"fusechat_utils/io.py", "fusechat_utils/config.py", "fusechat_utils/data/paper/benchmarks.csv"} <= pairs
    # imports inside functions count: evaluation/step.py imports runners lazily, runners the sandbox
    assert {"fusechat_utils/evaluation/runners.py", "fusechat_utils/sandbox.py"} <= evaluation


@pytest.mark.slow
def test_a_reused_step_is_not_copied_when_the_sources_outputs_were_edited(tmp_path, fixtures):
    run_pipeline("toy", "01", overrides(tmp_path, fixtures))
    selection = tmp_path / "run" / "01_prompts" / "selection.csv"
    selection.write_text(selection.read_text() + "\n")
    other = {**overrides(tmp_path, fixtures), "run_dir": str(tmp_path / "other")}
    assert [r.status for r in run_pipeline("toy", "01", other)] == ["ran"]


def test_a_second_writer_of_a_run_folder_is_refused_naming_the_holder(tmp_path, fixtures, capsys):
    import os

    from fusechat_utils.runlock import RunLocked, run_lock

    with run_lock(tmp_path / "run"):
        with pytest.raises(RunLocked, match=rf"is being written by another run \(pid {os.getpid()} on "):
            run_pipeline("toy", "01", overrides(tmp_path, fixtures))
        assert main(["run", "--profile", "toy", "--steps", "01", "--set", f"run_dir={tmp_path / 'run'}"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"pid {os.getpid()}" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "01_prompts").exists()  # the refused run wrote nothing
    # released on exit (and by the kernel when a holder is killed): the next run goes ahead
    assert [r.status for r in run_pipeline("toy", "01", overrides(tmp_path, fixtures))] == ["ran"]


def test_a_killed_lock_holder_leaves_no_stale_lock(tmp_path):
    import signal
    import subprocess
    import sys

    from fusechat_utils.runlock import run_lock

    code = (f"from fusechat_utils.runlock import run_lock\nimport time\nwith run_lock({str(tmp_path)!r}):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(tmp_path):
        pass


def test_cli_prints_a_bug_with_its_traceback(monkeypatch):
    from fusechat_utils import runner

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the kit")

    monkeypatch.setattr(runner, "run_pipeline", broken)
    with pytest.raises(ZeroDivisionError):
        main(["run", "--profile", "toy", "--steps", "01"])


def test_step_output_shows_lines_as_they_come_and_thins_progress_bars():
    from fusechat_utils.step_output import StepOutput

    shown, now = [], [0.0]
    out = StepOutput("02_sampling", lambda line, **k: shown.append(line), bar_interval_s=10, clock=lambda: now[0])
    out.write("loading the model\nhalf a li")
    assert shown == ["  02_sampling | loading the model"]  # a partial line waits for its end
    out.write("ne\n")
    for k in range(0, 11):  # tqdm redraws with carriage returns, here 1 s apart
        now[0] = float(k)
        out.write(f"\rhf src-llama:  {k * 10}%|{'#' * k}| {k}/10 [00:0{k}<00:00]")
    out.write("\rscore blocks:   0%|          | 0/4\rscore blocks: 100%|##########| 4/4\n")
    out.write("x" * 1000)
    out.close()
    assert shown[1] == "  02_sampling | half a line"
    # a bar: not at 0 %, then at most every 10 s, and done
    bars = [s.split("|")[1].strip() for s in shown[2:-1]]
    assert bars == ["hf src-llama:  10%", "hf src-llama:  100%", "score blocks: 100%"]
    assert len(shown[-1]) < 300 and shown[-1].endswith("…")


@pytest.mark.slow
def test_run_streams_the_steps_progress_and_trains_from_an_external_file(tmp_path):
    """05 through the runner with sft_data = a local file: the training loss lines reach the terminal while the step
    runs (its manifest is written only after), the manifest records the file, and editing the file reruns 05."""
    from test_train_sft import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    data = tmp_path / "sft.jsonl"
    row = lambda i: {"conversations": [{"from": "human", "value": f"what is {i} + 1"},  # noqa: E731
                                       {"from": "gpt", "value": f"answer {i + 1}"}]}
    data.write_text("".join(json.dumps(row(i)) + "\n" for i in range(16)))
    run_dir = tmp_path / "run"
    sets = {"run_dir": str(run_dir), "target_model": model, "sft_data": str(data), "sft_max_steps": 4,
            "sft_logging_steps": 1, "sft_save_steps": 4, "sft_global_batch_size": 4,
            "sft_per_device_train_batch_size": 4, "sft_max_length": 64}
    seen = []  # (line, whether the step had finished when the line came)
    log = lambda line, **k: seen.append((line, (run_dir / "05_sft" / "manifest.json").exists()))  # noqa: E731
    assert [r.status for r in run_pipeline("toy", "05", sets, log=log)] == ["ran"]
    during = [line for line, finished in seen if not finished]
    assert any(line.startswith("  05_sft | step 2/4: loss") for line in during), seen
    assert seen[-1][0].startswith("[1/1] 05_sft ran")
    manifest = read_json(run_dir / "05_sft" / "manifest.json")
    assert "param:sft_data" in manifest["inputs"] and "04_pairs" not in manifest["inputs"]  # no 04 needed
    assert json.loads((run_dir / "05_sft" / "metrics.json").read_text())["data"]["source"] == str(data)
    data.write_text(data.read_text() + json.dumps(row(99)) + "\n")
    quiet = []
    result = run_pipeline("toy", "05", sets, log=lambda line, **k: quiet.append(line), progress=False)[0]
    assert (result.status, result.reason) == ("ran", "inputs changed: param:sft_data") and len(quiet) == 2
