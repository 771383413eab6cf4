"""The pipeline's steps in order: notebook, config class and upstream steps of each."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from fusechat_utils.errors import UserError

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"

# step -> (module:ConfigClass, upstream steps whose artifacts it reads)
STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "01_prompts": ("fusechat_utils.prompts:PromptsConfig", ()),
    "02_sampling": ("fusechat_utils.sampling:SampleConfig", ("01_prompts",)),
    "03_scoring": ("fusechat_utils.scoring:ScoreConfig", ("01_prompts", "02_sampling")),
    "04_pairs": ("fusechat_utils.pairs:PairsConfig", ("03_scoring",)),
    "05_sft": ("fusechat_utils.train_sft:SFTStepConfig", ("04_pairs",)),
    "06_dpo": ("fusechat_utils.train_dpo:DPOStepConfig", ("04_pairs", "05_sft")),
    "07_eval": ("fusechat_utils.evaluation:EvalConfig", ("05_sft", "06_dpo")),
}


# step -> (param, upstream step): a non-empty value of the param names the data the step trains on instead of that
# upstream step's output (05/06 from a file or a hub dataset), so the step then neither needs nor follows it.
DATA_PARAMS: dict[str, tuple[str, str]] = {"05_sft": ("sft_data", "04_pairs"), "06_dpo": ("dpo_data", "04_pairs")}


def upstream_steps(step: str, params: dict) -> tuple[str, ...]:
    """The steps whose outputs this step reads under these params."""
    param, replaced = DATA_PARAMS.get(step, (None, None))
    return tuple(s for s in STEPS[step][1] if not (param and params.get(param) and s == replaced))


def config_class(step: str) -> type:
    target, _ = STEPS[step]
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def notebook_path(step: str) -> Path:
    return NOTEBOOKS_DIR / f"{step}.ipynb"


class StepsError(UserError, ValueError):
    """A `--steps` spec that selects no step or a reversed range; the message names the spec."""


def select_steps(spec: str | None) -> list[str]:
    """'01-04' -> ['01_prompts', ..., '04_pairs']; '03' -> ['03_scoring']; None -> all.

    Each end is a step number (1-7, '04' or '04_pairs'); a reversed range ('07-01'), an unknown number or a
    malformed spec is a ValueError naming the spec, never an empty or silently reordered run.
    """
    names = list(STEPS)
    if spec is None or not str(spec).strip():
        return names
    spec = str(spec).strip()
    numbers = {int(s[:2]): s for s in names}
    ends = spec.split("-")
    if len(ends) > 2:
        raise StepsError(f"--steps {spec!r}: expected one step (03) or a range (01-04)")

    def number(end: str) -> int:
        end = end.strip()
        found = re.fullmatch(r"(\d{1,2})(_\w+)?", end)
        if not found or int(found.group(1)) not in numbers or (found.group(2) and numbers[int(found.group(1))] != end):
            raise StepsError(f"--steps {spec!r}: {end!r} is not a step (steps are {', '.join(names)})")
        return int(found.group(1))

    lo = number(ends[0])
    hi = number(ends[-1])
    if lo > hi:
        raise StepsError(f"--steps {spec!r}: the range is reversed ({lo:02d} > {hi:02d}); steps run in order, "
                         f"write {hi:02d}-{lo:02d}")
    return [numbers[n] for n in range(lo, hi + 1)]
