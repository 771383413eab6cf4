"""The analysis notebooks, executed with papermill on the session's toy run (the step notebooks run in every
pipeline test through the runner): each runs without error and shows its tables."""

import papermill
import pytest

from fusechat_utils.config import PROJECT_ROOT

ANALYSIS = PROJECT_ROOT / "notebooks" / "analysis"


@pytest.mark.slow
@pytest.mark.parametrize("name, param", [("dataset_composition", "run_dir"), ("benchmark_tables", "run_dir"),
                                         ("ablations", "sweep_dir")])
def test_analysis_notebook_runs_on_a_toy_run(toy_run, tmp_path, name, param):
    run_dir, _ = toy_run
    out = tmp_path / f"{name}.ipynb"
    nb = papermill.execute_notebook(str(ANALYSIS / f"{name}.ipynb"), str(out), parameters={param: str(run_dir)},
                                    kernel_name="python3", cwd=str(ANALYSIS), progress_bar=False)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    shown = [o for o in outputs if o.get("output_type") in ("display_data", "execute_result")]
    assert any("text/html" in o.get("data", {}) for o in shown), f"{name} showed no table"
