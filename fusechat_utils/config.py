"""Typed, strict parameters: profile YAML files -> step config dataclasses.

A profile is a folder `params/<name>/` of flat YAML files: `common.yaml` (keys several steps share) and one
file per step (`01_prompts.yaml`, ...). Each step module defines a `@dataclass` subclass of `StepConfig`
whose fields are exactly the keys of that step's notebook `parameters` cell. Precedence:
dataclass defaults < profile files < `--set key=value` overrides. Unknown keys and wrong types are errors
that name the key and the file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = PROJECT_ROOT / "params"
COMMON_FILE = "common.yaml"


class ParamError(ValueError):
    """A parameter is unknown, missing or of the wrong type; the message names the key and where it came from."""


@dataclasses.dataclass
class StepConfig:
    """Keys every step has. Subclasses add their own, prefixed by the step (`sample_`, `sft_`, ...)."""

    run_dir: str = dataclasses.field(default="outputs/toy", metadata={"help": "where this run's artifacts go"})

    def __post_init__(self) -> None:
        check_types(type(self), dataclasses.asdict(self), source=type(self).__name__)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], source: str = "notebook parameters"):
        """Build from a namespace (a notebook's `globals()`, a profile dict): takes exactly this step's fields.

        Also makes the project root the working directory: Jupyter and nbval start kernels in the notebook's
        folder, papermill in the project root; relative paths in params must mean the same in all of them.
        """
        os.chdir(PROJECT_ROOT)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in params]
        if missing:
            raise ParamError(f"{source}: missing key(s) {missing} for {cls.__name__}")
        values = {n: params[n] for n in names}
        check_types(cls, values, source=source)
        return cls(**values)

    @property
    def step_dir(self) -> Path:
        """This step's output folder, `<run_dir>/<NN_step>/`; subclasses set STEP."""
        return Path(self.run_dir) / self.STEP  # type: ignore[attr-defined]


@dataclasses.dataclass
class SeededStepConfig(StepConfig):
    """Steps 04-07 share `seed` (common.yaml): the run seed, which a seed sweep varies. The data-building steps
    have their own seeds (`prompts_seed`, `sample_seed`), so runs that differ only in `seed` reuse 01-03."""

    seed: int = dataclasses.field(default=0, metadata={"help": "seed for python, numpy, torch and samplers"})


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def check_types(cls: type, values: Mapping[str, Any], source: str) -> None:
    """Raise ParamError naming the key and `source` if a value does not match the field's annotation."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise ParamError(f"{source}: unknown key '{key}' for {cls.__name__}")
        if not _matches(value, hints[key]):
            raise ParamError(f"{source}: key '{key}' must be {_name(hints[key])}, got {value!r}")


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# --------------------------------------------------------------------------------------------------------------
# profiles


def profile_dir(profile: str | Path) -> Path:
    """`toy` -> params/toy/; a path to a folder is taken as it is (a user's own profile)."""
    path = Path(profile)
    if path.is_dir():
        return path
    path = PARAMS_DIR / str(profile)
    if not path.is_dir():
        known = sorted(p.name for p in PARAMS_DIR.iterdir() if p.is_dir() and p.name != "accelerate")
        raise ParamError(f"unknown profile '{profile}': no folder {path} (known: {', '.join(known)})")
    return path


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ParamError(f"{path}: expected a flat mapping of key: value, got {type(data).__name__}")
    return data


def load_profile_files(profile: str | Path) -> dict[str, dict[str, Any]]:
    """{file stem: {key: value}} for every YAML file of the profile, checked for keys defined twice."""
    folder = profile_dir(profile)
    files = {p.stem: read_yaml(p) for p in sorted(folder.glob("*.yaml"))}
    seen: dict[str, str] = {}
    for stem, data in files.items():
        for key in data:
            if key in seen:
                raise ParamError(f"{folder / (stem + '.yaml')}: key '{key}' is already set in {seen[key]}.yaml")
            seen[key] = stem
    return files


def load_profile(profile: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merged, type-checked params of a profile, with overrides applied (each must be a known key)."""
    from fusechat_utils.steps import STEPS, config_class

    folder = profile_dir(profile)
    files = load_profile_files(folder)
    merged = {k: v for data in files.values() for k, v in data.items()}
    for key, value in (overrides or {}).items():
        if key not in merged:
            raise ParamError(f"--set {key}: unknown key for profile {folder} (see {folder}/*.yaml)")
        merged[key] = value
    for step in STEPS:
        cls = config_class(step)
        fields = {f.name for f in dataclasses.fields(cls)}
        step_keys = files.get(step, {})
        unknown = set(step_keys) - fields
        if unknown:
            raise ParamError(f"{folder / (step + '.yaml')}: unknown key(s) {sorted(unknown)} for {cls.__name__}")
        for key in fields & merged.keys():
            where = "--set" if key in (overrides or {}) else str(folder / f"{_file_of(files, key)}.yaml")
            check_types(cls, {key: merged[key]}, source=where)
    return merged


def _file_of(files: Mapping[str, Mapping[str, Any]], key: str) -> str:
    return next(stem for stem, data in files.items() if key in data)


def parse_set(items: list[str]) -> dict[str, Any]:
    """`["dpo_beta=0.1", "sample_backend=vllm"]` -> typed values (YAML scalars: 0.1 is float, true is bool)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ParamError(f"--set {item!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(raw)
    return out
