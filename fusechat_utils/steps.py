"""The pipeline's steps in order: notebook, config class and upstream steps of each."""

from __future__ import annotations

import importlib
from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"

# step -> (module:ConfigClass, upstream steps whose artifacts it reads)
STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "01_prompts": ("fusechat_utils.prompts:PromptsConfig", ()),
    "02_sampling": ("fusechat_utils.sampling:SampleConfig", ("01_prompts",)),
    "03_scoring": ("fusechat_utils.scoring:ScoreConfig", ("01_prompts", "02_sampling")),
    "04_pairs": ("fusechat_utils.pairs:PairsConfig", ("03_scoring",)),
    "05_sft": ("fusechat_utils.train:SFTStepConfig", ("04_pairs",)),
    "06_dpo": ("fusechat_utils.train:DPOStepConfig", ("04_pairs", "05_sft")),
    "07_eval": ("fusechat_utils.evaluation:EvalConfig", ("05_sft", "06_dpo")),
}


def config_class(step: str) -> type:
    target, _ = STEPS[step]
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def notebook_path(step: str) -> Path:
    return NOTEBOOKS_DIR / f"{step}.ipynb"


def select_steps(spec: str | None) -> list[str]:
    """'01-04' -> ['01_prompts', ..., '04_pairs']; '03' -> ['03_scoring']; None -> all."""
    names = list(STEPS)
    if not spec:
        return names
    lo, _, hi = spec.partition("-")
    hi = hi or lo
    picked = [s for s in names if lo.zfill(2) <= s[:2] <= hi.zfill(2)]
    if not picked:
        raise ValueError(f"--steps {spec!r} selects no step (steps are {', '.join(names)})")
    return picked
