"""The toy world: 4 heterogeneous source LMs, a weak target, a reward model, fixture datasets and benchmarks.

Usage: `from fusechat_utils.toyworld import build; path = build("outputs/toy_world")` (cached by recipe hash).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import shutil
import time
from pathlib import Path

from fusechat_utils.io import write_json, write_jsonl
from fusechat_utils.toyworld import tasks
from fusechat_utils.toyworld.recipe import Recipe, recipe_hash

__all__ = ["build", "Recipe", "recipe_hash", "tasks"]


def _job(args: tuple) -> tuple[str, dict]:
    name, spec, out = args
    if name == "reward":
        from fusechat_utils.toyworld.reward import train_reward

        return name, train_reward(spec, out)
    from fusechat_utils.toyworld.train import train_model

    return name, train_model(spec, out)


def _train_all(recipe: Recipe, models_dir: Path) -> dict:
    # Slowest jobs first so the two workers finish together.
    jobs = sorted(((n, s, str(models_dir / n)) for n, s in recipe.models.items()),
                  key=lambda j: -j[1]["steps"] * j[1]["hidden"])
    jobs.append(("reward", recipe.reward, str(models_dir / "reward")))
    if recipe.processes <= 1:
        return dict(map(_job, jobs))
    with multiprocessing.get_context("spawn").Pool(recipe.processes) as pool:
        return dict(pool.map(_job, jobs, chunksize=1))


def write_benchmarks(folder: Path, per_family: int) -> None:
    for fam in tasks.FAMILIES:
        write_jsonl(folder / f"{fam}.jsonl", tasks.examples(fam, "heldout", per_family))


def _is_current(out: Path, digest: str) -> bool:
    manifest = out / "manifest.json"
    return manifest.exists() and json.loads(manifest.read_text()).get("recipe_hash") == digest


def build(out_dir: str | Path = "outputs/toy_world", force: bool = False, recipe: Recipe | None = None) -> Path:
    """Build the toy world into `out_dir` unless a world with the same recipe hash is already there."""
    from fusechat_utils.toyworld.fixtures import write_fixtures

    recipe, out = recipe or Recipe(), Path(out_dir)
    digest = recipe_hash(recipe)
    if not force and _is_current(out, digest):
        return out
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # a half-rebuilt world must not look current
    for sub in ("models", "fixtures", "benchmarks"):
        shutil.rmtree(out / sub, ignore_errors=True)
    models = _train_all(recipe, out / "models")
    fixture_counts = write_fixtures(out / "fixtures", recipe.fixtures_per_family, recipe.seed)
    write_benchmarks(out / "benchmarks", recipe.benchmark_per_family)
    manifest = {"recipe": dataclasses.asdict(recipe), "recipe_hash": digest, "models": models,
                "fixtures": fixture_counts, "build_s": round(time.time() - started, 1)}
    write_json(out / "manifest.json", manifest)
    return out
