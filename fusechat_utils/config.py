"""Typed, strict parameters: profile YAML files -> step config dataclasses.

A profile is a folder `params/<name>/` of flat YAML files: `common.yaml` (keys several steps share) and one
file per step (`01_prompts.yaml`, ...). Each step module defines a `@dataclass` subclass of `StepConfig`
whose fields are exactly the keys of that step's notebook `parameters` cell. Precedence:
dataclass defaults < profile files < `--set key=value` overrides. Unknown keys and wrong types are errors
that name the key and the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fusechat_utils.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = PROJECT_ROOT / "params"
COMMON_FILE = "common.yaml"


class ParamError(UserError, ValueError):
    """A parameter is unknown, missing, of the wrong type or impossible; the message names the key and where it
    came from. `keys` are the parameters at fault (load_profile maps them to their files)."""

    def __init__(self, message: str, keys: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.keys = tuple(keys)


def invalid(message: str, *keys: str) -> ParamError:
    """A ParamError about `keys` (raise it from a config's __post_init__)."""
    return ParamError(message, keys)


@dataclasses.dataclass
class StepConfig:
    """Keys every step has. Subclasses add their own, prefixed by the step (`sample_`, `sft_`, ...)."""

    run_dir: str = dataclasses.field(default="outputs/toy", metadata={"help": "where this run's artifacts go"})

    def __post_init__(self) -> None:
        check_types(type(self), dataclasses.asdict(self), source=type(self).__name__)
        check_values(self)

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
        try:
            cfg = cls(**values)
        except ParamError as err:
            raise ParamError(f"{source}: {err}", err.keys) from None
        check_local_paths(values, source=lambda key: source)
        return cfg

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
            hint = ""
            if isinstance(value, str) and _matches(0.5, hints[key]) and re.fullmatch(r"[-+]?\d+e[-+]?\d+", value):
                hint = f" (YAML reads {value} as a string: write it with a dot, e.g. {value.replace('e', '.0e', 1)})"
            raise ParamError(f"{source}: key '{key}' must be {_name(hints[key])}, got {value!r}{hint}", [key])


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# --------------------------------------------------------------------------------------------------------------
# impossible values (every step config gets these from StepConfig.__post_init__, by the key's name)

AT_LEAST_ONE = ("_batch_size", "_workers", "_num_processes", "_save_steps", "_logging_steps", "_max_new_tokens",
                "_max_length", "_tensor_parallel_size", "_num_shards", "_limit")
IN_UNIT_INTERVAL = ("_ratio", "_fraction")
POSITIVE = ("_learning_rate", "_timeout_s", "_num_train_epochs", "_beta")
NON_NEGATIVE = ("_tol",)


def check_values(cfg: Any) -> None:
    """Raise ParamError for a value no run can use: a batch < 1, a ratio outside [0, 1], a NaN, a negative seed..."""
    for f in dataclasses.fields(cfg):
        key, value = f.name, getattr(cfg, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid(f"key '{key}' must be a finite number, got {value!r}", key)
        if key.endswith(AT_LEAST_ONE) and value < 1:
            raise invalid(f"key '{key}' must be >= 1, got {value!r}", key)
        if key.endswith(IN_UNIT_INTERVAL) and not 0 <= value <= 1:
            raise invalid(f"key '{key}' must be in [0, 1], got {value!r}", key)
        if key.endswith(POSITIVE) and value <= 0:
            raise invalid(f"key '{key}' must be > 0, got {value!r}", key)
        if (key.endswith(NON_NEGATIVE) or key == "seed" or key.endswith("_seed") or key.startswith("sample_n_")) \
                and value < 0:
            raise invalid(f"key '{key}' must be >= 0, got {value!r}", key)
        if key.endswith("_max_steps") and value != -1 and value < 1:
            raise invalid(f"key '{key}' must be -1 (use the epochs) or >= 1, got {value!r}", key)


# --------------------------------------------------------------------------------------------------------------
# local paths: a model or file a step reads must exist before the run starts, not hours into it

PATH_KEYS = ("target_model", "score_reward_model", "eval_reward_model", "sft_accelerate_config",
             "dpo_accelerate_config")


def looks_local(value: str) -> bool:
    """True for a local path (absolute, ./, ../, ~, outputs/, 2+ slashes, or its first folder exists); False for a
    hub id such as 'meta-llama/Llama-3.1-8B-Instruct' or 'gpt2'."""
    if value.startswith(("/", "./", "../", "~", "outputs/", "outputs\\")) or value in (".", "..") or "\\" in value:
        return True
    parts = Path(value).parts
    return len(parts) > 2 or (len(parts) > 1 and (PROJECT_ROOT / parts[0]).exists())


def _missing(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and looks_local(value) and \
        not (PROJECT_ROOT / Path(value).expanduser()).exists()


def local_path_values(values: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(key, label, path) of every local model/file path among `values`: the PATH_KEYS, each
    `sample_sources[i].model` and each `eval_models` value outside the run folder (those are trained by the run);
    `eval_reward_model` only when the toy benchmarks run."""
    found = [(k, k, values[k]) for k in PATH_KEYS if isinstance(values.get(k), str)
             # the eval reward model judges only the toy win rate
             and (k != "eval_reward_model" or "toy" in (values.get("eval_benchmarks") or []))]
    for i, src in enumerate(values.get("sample_sources") or []):
        if isinstance(src, dict) and isinstance(src.get("model"), str):
            found.append(("sample_sources", f"sample_sources[{i}].model", src["model"]))
    run_dir = (PROJECT_ROOT / str(values.get("run_dir") or "outputs/toy")).resolve()
    for stage, model in (values.get("eval_models") or {}).items():
        if isinstance(model, str) and not (PROJECT_ROOT / model).resolve().is_relative_to(run_dir):
            found.append(("eval_models", f"eval_models.{stage}", model))
    return found


def check_local_paths(values: Mapping[str, Any], source) -> None:
    """ParamError naming the key and `source(key)` for a local path that does not exist (hub ids pass)."""
    for key, label, value in local_path_values(values):
        if _missing(value):
            raise ParamError(f"{source(key)}: key '{label}' is the local path {value!r}, which does not exist "
                             f"(a hub id is 'org/name'; build the toy world with `fusechat toy-world`)", [key])


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


def load_profile(profile: str | Path, overrides: Mapping[str, Any] | None = None,
                 steps: list[str] | None = None) -> dict[str, Any]:
    """Merged, checked params of a profile, with overrides applied (each must be a known key).

    Checks, each an error naming the key and its file (or `--set`): unknown keys (in any file, common.yaml too),
    wrong types, impossible values (each step's config is built: its __post_init__ checks ranges and keys that
    depend on each other). With `steps`, the local model paths those steps read must exist (hub ids pass).
    """
    from fusechat_utils.steps import STEPS, config_class

    folder = profile_dir(profile)
    files = load_profile_files(folder)
    merged = {k: v for data in files.values() for k, v in data.items()}
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        if key not in merged:
            raise ParamError(f"--set {key}: unknown key for profile {folder} (see {folder}/*.yaml)")
        merged[key] = value

    def where(key: str) -> str:
        return "--set" if key in overrides else str(folder / f"{_file_of(files, key)}.yaml")

    all_fields: set[str] = set()
    for step in STEPS:
        cls = config_class(step)
        fields = {f.name for f in dataclasses.fields(cls)}
        all_fields |= fields
        step_keys = files.get(step, {})
        unknown = set(step_keys) - fields
        if unknown:
            raise ParamError(f"{folder / (step + '.yaml')}: unknown key(s) {sorted(unknown)} for {cls.__name__}")
        for key in fields & merged.keys():
            check_types(cls, {key: merged[key]}, source=where(key))
    for stem, data in files.items():
        unknown = set(data) - all_fields
        if unknown:
            raise ParamError(f"{folder / (stem + '.yaml')}: unknown key(s) {sorted(unknown)} (no step uses them)")
    for step in STEPS:
        cls = config_class(step)
        fields = [f.name for f in dataclasses.fields(cls)]
        try:
            cls(**{k: merged[k] for k in fields if k in merged})
        except ValueError as err:
            given = [k for k in fields if k in merged]
            keys = [k for k in getattr(err, "keys", ()) if k in merged] or \
                [k for k in given if re.search(rf"\b{k}\b", str(err))] or given
            origins = ", ".join(dict.fromkeys(where(k) for k in keys))
            raise ParamError(f"{origins}: {err}", keys) from None
    for step in steps or ():
        fields = {f.name for f in dataclasses.fields(config_class(step))}
        check_local_paths({k: merged[k] for k in fields if k in merged}, source=where)
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
