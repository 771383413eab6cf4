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
