"""Run the pipeline's notebooks in order with papermill, one folder and one manifest.json per step.

Usage:
    fusechat run --profile toy [--steps 01-04] [--set key=value ...] [--run-name NAME] [--force]

A step's fingerprint covers what its result depends on: resolved params, its notebook's source, the kit's code it
runs (`provenance.step_code`), the versions of the packages it uses, and the hashes of its inputs (upstream steps'
outputs and local files named by params). A step is skipped when its manifest holds the same fingerprint AND its
output files still have the hashes the manifest recorded; it is reused (copied) from another run that ran it with
the same fingerprint, after the same check there; otherwise it runs, and the log says why (`params changed:
dpo_beta`, `code changed: fusechat_utils/pairs.py`, `output edited: sft.parquet`, ...). One process writes a run
folder at a time (`runlock`). A failing step stops the run and names the step, the executed notebook and the
failing cell's error. While a step runs, its own output lines (training loss per logging step, sampling and
scoring progress) stream to the terminal (`step_output.StepOutput`); `progress=False` keeps one line per step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fusechat_utils.config import PROJECT_ROOT, ParamError, load_profile
from fusechat_utils.errors import UserError
from fusechat_utils.io import hash_obj, hash_path, read_json, write_json
from fusechat_utils.provenance import package_versions, step_code
from fusechat_utils.runlock import run_lock
from fusechat_utils.step_output import StepOutput
from fusechat_utils.steps import DATA_PARAMS, config_class, notebook_path, select_steps, upstream_steps

MANIFEST = "manifest.json"
# Step files that are not results: trackers' logs (05/06 with report_to trackio), which viewing them may rewrite
NOT_OUTPUTS = ("trackio",)
# Where identical steps of other runs are found; tests point it at a temporary folder.
STEP_CACHE_ENV = "FUSECHAT_STEP_CACHE"


class StepFailed(UserError):
    """A notebook raised; the message names the step, the executed notebook and the cell's error."""


@dataclasses.dataclass
class StepResult:
    step: str
    status: str  # ran | skipped (unchanged here) | reused (identical step copied from another run)
    wall_time_s: float
    notebook: Path
    reason: str = ""  # why it ran: "params changed: dpo_beta", "code changed: ...", "not run yet"


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
        raise ParamError(f"{notebook_path(step)}: parameters {missing} are not set by the profile")
    config_class(step).from_params(params, source=f"params for {step}")
    return params


def input_hashes(step: str, params: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """Upstream steps' output hashes plus a content hash of every local file or folder a param names; a hub
    dataset that 05/06 train from is named by its id (and @revision, when pinned)."""
    inputs = {}
    for upstream in upstream_steps(step, params):
        manifest = run_dir / upstream / MANIFEST
        inputs[upstream] = read_json(manifest)["outputs_hash"] if manifest.is_file() else "missing"
    for key, value in sorted(params.items()):
        if key != "run_dir" and isinstance(value, str) and value and Path(value).exists():
            inputs[f"param:{key}"] = hash_path(value)
    data_key = DATA_PARAMS.get(step, ("",))[0]
    if params.get(data_key) and f"param:{data_key}" not in inputs:
        inputs[f"param:{data_key}"] = f"hub:{params[data_key]}"
    return inputs


def notebook_hash(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return hash_obj([(c["cell_type"], "".join(c["source"])) for c in cells])


def output_hashes(step_dir: Path) -> dict[str, str]:
    skip = {MANIFEST, f"{step_dir.name}.ipynb", *NOT_OUTPUTS}
    return {p.name: hash_path(p) for p in sorted(step_dir.iterdir()) if p.name not in skip and not p.name.startswith(".")}


def git_commit() -> str | None:
    git = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty", "--abbrev=40"],
                         capture_output=True, text=True)
    return git.stdout.strip() or None


def fingerprint_parts(step: str, params: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Everything the step's result depends on; run_dir is left out so identical steps of other runs match."""
    return {"params": {k: v for k, v in params.items() if k != "run_dir"},
            "inputs": input_hashes(step, params, run_dir),
            "notebook": notebook_hash(notebook_path(step)),
            "code": step_code(notebook_path(step)),
            "packages": package_versions(),
            "python": sys.version.split()[0]}


def _changed(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def stale_reason(manifest: dict | None, parts: dict[str, Any], step_dir: Path) -> str | None:
    """Why the step's result on disk cannot be used (None: it can): the first of changed params, inputs, notebook,
    code, packages, or outputs that no longer match their recorded hashes."""
    if manifest is None:
        return "interrupted before it finished" if step_dir.is_dir() and any(step_dir.iterdir()) else "not run yet"
    old = manifest.get("fingerprint_parts")
    if old is None:
        return "made by an older kit (no fingerprint parts)"
    if old["params"] != parts["params"]:
        return "params changed: " + ", ".join(_changed(old["params"], parts["params"]))
    if old["inputs"] != parts["inputs"]:
        return "inputs changed: " + ", ".join(_changed(old["inputs"], parts["inputs"]))
    if old["notebook"] != parts["notebook"]:
        return f"notebook changed: {notebook_path(step_dir.name).relative_to(PROJECT_ROOT)}"
    if old["code"] != parts["code"]:
        return "code changed: " + ", ".join(_changed(old["code"], parts["code"]))
    if old["packages"] != parts["packages"] or old["python"] != parts["python"]:
        names = _changed(old["packages"], parts["packages"]) + (["python"] if old["python"] != parts["python"] else [])
        return "packages changed: " + ", ".join(
            f"{n} {old['packages'].get(n, old['python'] if n == 'python' else '-')} -> "
            f"{parts['packages'].get(n, parts['python'] if n == 'python' else '-')}" for n in names)
    return outputs_reason(manifest, step_dir)


def outputs_reason(manifest: dict, step_dir: Path) -> str | None:
    """None when every output file still has the hash the manifest recorded."""
    recorded, now = manifest.get("outputs", {}), output_hashes(step_dir)
    for name in sorted(set(recorded) | set(now)):
        if name not in now:
            return f"output missing: {name}"
        if name not in recorded:
            return f"output added: {name}"
        if recorded[name] != now[name]:
            return f"output edited: {name}"
    return None


# The kernel's startup warning about TCP without encryption is not ours to act on: it listens on 127.0.0.1 only and
# every message is signed with the key of a 0600 connection file; printed once per notebook it buried real warnings.
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


def execute(step: str, params: dict[str, Any], out_nb: Path, log=None) -> None:
    """Run the step's notebook into `out_nb`; with `log`, the kernel's output lines go to it as they come."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    streams = [StepOutput(step, log), StepOutput(step, log)] if log else [None, None]
    try:
        papermill.execute_notebook(str(notebook_path(step)), str(out_nb), parameters=params, kernel_name="python3",
                                   cwd=str(PROJECT_ROOT), progress_bar=False, log_output=False,
                                   stdout_file=streams[0], stderr_file=streams[1], extra_arguments=KERNEL_ARGS)
    except PapermillExecutionError as err:
        raise StepFailed(f"step {step} failed in cell {err.cell_index} ({err.ename}: {err.evalue})\n"
                         f"  executed notebook: {out_nb}") from None
    finally:
        for stream in filter(None, streams):
            stream.close()


def cache_entry(step: str, fingerprint: str) -> Path:
    root = Path(os.environ.get(STEP_CACHE_ENV) or PROJECT_ROOT / "outputs" / ".step_cache")
    return root / f"{step}-{fingerprint[:32]}"


def reuse(step: str, fingerprint: str, step_dir: Path, params: dict[str, Any]) -> Path | None:
    """Copy the outputs of an identical step from another run: same fingerprint, outputs still as recorded there.

    Sweeps hit this all the time: ablation variants that differ only in 04_pairs share 01-03 of their seed.
    """
    entry = cache_entry(step, fingerprint)
    source = Path(entry.read_text()) if entry.is_file() else None
    if source is None or source == step_dir.resolve() or not (source / MANIFEST).is_file():
        return None
    manifest = read_json(source / MANIFEST)
    if manifest.get("fingerprint") != fingerprint or outputs_reason(manifest, source) is not None:
        return None
    shutil.rmtree(step_dir, ignore_errors=True)
    # A copy, not hard links: trainers rewrite checkpoint files in place, which would change both runs. copy2 keeps
    # mtimes, which the hashes of files above io.HASH_CONTENT_LIMIT use.
    shutil.copytree(source, step_dir)
    write_json(step_dir / MANIFEST, {**manifest, "params": params, "reused_from": str(source)})
    return source


def run_step(step: str, params: dict[str, Any], run_dir: Path, force: bool, meta: dict, log=None,
             reuse_ok: bool = True) -> StepResult:
    """Skip, reuse or run one step; `reuse_ok=False` (a merge of shards: their work is done) never copies an
    identical step from another run over this one."""
    step_dir = run_dir / step
    out_nb = step_dir / f"{step}.ipynb"
    parts = fingerprint_parts(step, params, run_dir)
    fingerprint = hash_obj(parts)
    manifest_path = step_dir / MANIFEST
    manifest = read_json(manifest_path) if manifest_path.is_file() else None
    reason = "--force" if force else stale_reason(manifest, parts, step_dir)
    if reason is None:
        return StepResult(step, "skipped", 0.0, out_nb)
    source = None if force or not reuse_ok else reuse(step, fingerprint, step_dir, params)
    if source is not None:
        return StepResult(step, "reused", 0.0, out_nb, f"{reason}; identical step copied from {source}")
    step_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)  # a failed re-run must not look finished
    started = time.time()
    execute(step, params, out_nb, log)
    wall = time.time() - started
    outputs = output_hashes(step_dir)
    write_json(manifest_path, {
        "step": step, **meta, "params": params, "inputs": parts["inputs"], "outputs": outputs,
        "outputs_hash": hash_obj(outputs), "fingerprint": fingerprint, "fingerprint_parts": parts,
        "seeds": {k: v for k, v in params.items() if k == "seed" or k.endswith("_seed")},
        "wall_time_s": round(wall, 2), "finished_at": datetime.now(timezone.utc).isoformat(),
        "packages": parts["packages"], "python": parts["python"], "git_commit": git_commit(), "reason": reason,
    })
    cache_entry(step, fingerprint).parent.mkdir(parents=True, exist_ok=True)
    cache_entry(step, fingerprint).write_text(str(step_dir.resolve()))
    return StepResult(step, "ran", wall, out_nb, reason)


def resolve_run(profile: str, steps: str | None, overrides: dict[str, Any] | None, run_name: str | None
                ) -> tuple[list[str], dict[str, Any], Path, dict]:
    """(selected steps, every selected step's checked params, the run folder, the manifest's meta), before any
    step runs; `run_dir` is outputs/<run_name> (default: the profile's name) unless overridden."""
    overrides = dict(overrides or {})
    selected = select_steps(steps)
    params = load_profile(profile, overrides, steps=selected)
    run_name = run_name or Path(profile).name
    if "run_dir" not in overrides:
        params["run_dir"] = f"outputs/{run_name}"
    meta = {"profile": str(profile), "run_name": run_name, "overrides": overrides}
    return selected, params, PROJECT_ROOT / params["run_dir"], meta


def run_pipeline(profile: str, steps: str | None = None, overrides: dict[str, Any] | None = None,
                 run_name: str | None = None, force: bool = False, log=print, progress: bool = True
                 ) -> list[StepResult]:
    """Run the selected steps of a profile in order, holding the run folder's lock; one StepResult per step.
    `log` gets a line per step and, with `progress`, each step's own output lines while it runs."""
    selected, params, run_dir, meta = resolve_run(profile, steps, overrides, run_name)
    results = []
    with run_lock(run_dir):
        for i, step in enumerate(selected, 1):
            log(f"[{i}/{len(selected)}] {step} ...", flush=True)
            result = run_step(step, step_params(step, params, params["run_dir"]), run_dir, force, meta,
                              log if progress else None)
            why = f"; {result.reason}" if result.reason else ""
            log(f"[{i}/{len(selected)}] {step} {result.status} ({result.wall_time_s:.1f} s{why}) -> {result.notebook}",
                flush=True)
            results.append(result)
    return results
