"""The stand-in world a paper profile's rehearsal runs in: tiny local models for every hub model the profile names,
fixture files for its hub datasets and its benchmark files that do not ship.

- models: each source, the target (`chat_templates.stand_in_for`: the family's architecture and special tokens, the
  model's own chat template) and ArmoRM (`chat_templates.stand_in_reward_model`: its custom `.score` output through
  trust_remote_code), under `<folder>/models/<org>__<name>/`;
- `<folder>/fixtures/`: the 8 datasets in their real schemas (`rehearsal_fixtures`);
- `<folder>/benchmarks/`: the benchmark files the kit cannot ship (GPQA-Diamond, LiveCodeBench), copied
  from tests/fixtures/benchmarks/ (rows in each file's released format).
The judged benchmarks call `loopback_judge.LoopbackJudge` meanwhile.
The world is built once per folder; `world.json` records what it holds, and a folder built for other models is
rebuilt. Builds are seeded, so a rebuild gives the same files.
Usage: `world = build_world(folder, params)`; `world.models["google/gemma-2-27b-it"]` -> local path.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusechat_utils.chat_templates import ARMORM, HUB_FAMILY, stand_in_for, stand_in_reward_model
from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.errors import UserError
from fusechat_utils.io import read_json, write_json

WORLD_FILE = "world.json"
# Bumped when what a world holds changes, so older worlds are rebuilt.
WORLD_VERSION = 1
BENCHMARK_FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "benchmarks"
# Benchmarks whose file the kit cannot ship (registry entries with data=None, LiveBench aside: it is imported).
SUPPLIED = {"GPQA-Diamond": "gpqa_diamond.jsonl", "LiveCodeBench 2408-2411": "livecodebench_test.jsonl"}


@dataclass
class World:
    folder: Path
    models: dict[str, str]  # hub id -> local stand-in folder
    fixtures: str  # folder of the 8 dataset files
    benchmarks: dict[str, str]  # benchmark name -> local file


def hub_models(params: dict[str, Any]) -> list[str]:
    """The hub models a profile's steps load: its sources, its target and its reward model (local paths kept)."""
    from fusechat_utils.config import looks_local

    names = [s["model"] for s in params["sample_sources"]] + [params["target_model"], params["score_reward_model"]]
    return sorted({n for n in names if not looks_local(n)})


def _safe(model_id: str) -> str:
    return model_id.replace("/", "__")


def build_world(folder: str | Path, params: dict[str, Any], log=print) -> World:
    """Stand-ins for the profile's hub models, dataset fixtures and supplied benchmark files under `folder`."""
    from fusechat_utils.rehearsal_fixtures import write_fixtures

    folder = Path(folder)
    wanted = hub_models(params)
    unknown = [m for m in wanted if m not in HUB_FAMILY and m != ARMORM]
    if unknown:
        raise UserError(f"no stand-in for the hub model(s) {unknown}: a rehearsal knows {sorted(HUB_FAMILY)} and "
                        f"{ARMORM} (fusechat_utils/chat_templates.py HUB_FAMILY)")
    recipe = {"version": WORLD_VERSION, "models": wanted}
    world = World(folder, {m: str(folder / "models" / _safe(m)) for m in wanted}, str(folder / "fixtures"),
                  {name: str(folder / "benchmarks" / file) for name, file in SUPPLIED.items()})
    stamp = folder / WORLD_FILE
    if stamp.is_file() and read_json(stamp) == recipe:
        return world
    shutil.rmtree(folder, ignore_errors=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per saved stand-in says nothing
    for model_id, path in world.models.items():
        log(f"stand-in for {model_id} -> {path}", flush=True)
        stand_in_reward_model(path) if model_id == ARMORM else stand_in_for(model_id, path)
    write_fixtures(world.fixtures)
    for name, file in SUPPLIED.items():
        Path(world.benchmarks[name]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BENCHMARK_FIXTURES / file, world.benchmarks[name])
    write_json(stamp, recipe)  # last: a world interrupted while building has no stamp and is rebuilt
    return world


# ----------------------------------------------------------------------------------------------------------------
# the judge


