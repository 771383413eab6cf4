"""Typed, strict parameters: profile YAML files -> step config dataclasses.

The config dataclasses (one `StepConfig` subclass per step, in the step's module) are the one source of the
parameters: their fields are exactly the keys of the step's notebook `parameters` cell, and their defaults are the
toy profile's values. The notebooks' `parameters` cells and `params/toy/` are written from them
(`python -m fusechat_utils.defaults --write`; `--check` and tests/test_params.py fail when they drift).

A profile is a folder `params/<name>/` of flat YAML files with flat, step-prefixed keys (`dpo_beta`, `sft_...`):
`common.yaml` (keys several steps share), one file per step (`01_prompts.yaml`, ...; only that step's keys), or
any other name (any known key). One file may name a `base:` profile (a name under params/, a folder, or
`defaults`: the dataclass defaults) whose values the profile's own files override key by key: the paper targets
are short overlays on `params/paper/`. Precedence: base chain < the profile's own files < `--set key=value`.
Unknown keys, keys set twice in one profile's files, missing keys and wrong types are errors that name the key and
the file.
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

    def check_machine(self) -> None:
        """ParamError when this machine cannot run the step as configured (e.g. QLoRA without a GPU); checked for
        the selected steps before any runs, unlike the values, which hold on any machine."""

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

BASE_KEY = "base"
DEFAULTS = "defaults"  # `base: defaults`: the config dataclasses' defaults (the toy profile's values)


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


def _read_profile(folder: Path) -> tuple[dict[str, dict[str, Any]], tuple[str, Any] | None]:
    """A profile folder's own files ({stem: {key: value}}, `base` taken out) and its `base:` as (file, value)."""
    files = {p.stem: read_yaml(p) for p in sorted(folder.glob("*.yaml"))}
    seen: dict[str, str] = {}
    base = None
    for stem, data in files.items():
        for key in data:
            if key in seen:
                raise ParamError(f"{folder / (stem + '.yaml')}: key '{key}' is already set in {seen[key]}.yaml")
            seen[key] = stem
        if BASE_KEY in data:
            base = (str(folder / f"{stem}.yaml"), data.pop(BASE_KEY))
    return files, base


def load_profile_files(profile: str | Path) -> dict[str, dict[str, Any]]:
    """{file stem: {key: value}} for every YAML file of the profile itself (not its base), checked for keys defined
    twice; the `base:` key is not among them (profile_layers follows it)."""
    return _read_profile(profile_dir(profile))[0]


@dataclasses.dataclass
class Layer:
    """One profile of a `base:` chain: its folder and own files; `folder` None is the config dataclasses' defaults
    (`files` then holds {config class name: its defaults})."""

    folder: Path | None
    files: dict[str, dict[str, Any]]

    def file(self, stem: str) -> str:
        return f"{stem} default" if self.folder is None else str(self.folder / f"{stem}.yaml")


def dataclass_defaults() -> dict[str, dict[str, Any]]:
    """{config class name: {field: default}} of every step, in step order."""
    from fusechat_utils.steps import STEPS, config_class

    return {config_class(s).__name__: dataclasses.asdict(config_class(s)()) for s in STEPS}


def _base_folder(value: Any, where: str, folder: Path) -> Path | None:
    """The folder `base: value` names (None: the dataclass defaults): a profile name under params/, or a path
    (absolute, or relative to the profile's folder)."""
    if not isinstance(value, str) or not value.strip():
        raise ParamError(f"{where}: key '{BASE_KEY}' must be a profile name, a path to a profile folder or "
                         f"'{DEFAULTS}', got {value!r}", [BASE_KEY])
    if value == DEFAULTS:
        return None
    if "/" in value or "\\" in value or value.startswith((".", "~")):
        path = (folder / Path(value).expanduser()).resolve()
        if not path.is_dir():
            raise ParamError(f"{where}: base '{value}' is not a folder ({path})", [BASE_KEY])
        return path
    try:
        return profile_dir(PARAMS_DIR / value)
    except ParamError:
        known = sorted(p.name for p in PARAMS_DIR.iterdir() if p.is_dir() and p.name != "accelerate")
        raise ParamError(f"{where}: base '{value}' is not a profile: no folder {PARAMS_DIR / value} (known: "
                         f"{', '.join(known)}, or '{DEFAULTS}')", [BASE_KEY]) from None


def profile_layers(profile: str | Path) -> list[Layer]:
    """The profile and its `base:` chain, root first. A profile without `base:` is the root and sets every key
    itself; `base: defaults` ends the chain on the config dataclasses' defaults."""
    chain: list[Layer] = []
    folder: Path | None = profile_dir(profile)
    seen: list[Path] = []
    while folder is not None:
        if folder.resolve() in seen:
            names = " -> ".join(str(f) for f in [*seen, folder.resolve()])
            raise ParamError(f"{chain[-1].folder}: base makes a cycle: {names}", [BASE_KEY])
        seen.append(folder.resolve())
        files, base = _read_profile(folder)
        chain.append(Layer(folder, files))
        if base is None:
            break
        folder = _base_folder(base[1], base[0], folder)
        if folder is None:
            chain.append(Layer(None, dataclass_defaults()))
    return chain[::-1]


def load_profile(profile: str | Path, overrides: Mapping[str, Any] | None = None,
                 steps: list[str] | None = None) -> dict[str, Any]:
    """Merged, checked params of a profile, with overrides applied (each must be a known key).

    A profile's files may name a `base:` (a profile name, a folder, or `defaults`: the config dataclasses'
    defaults); its own files override the base's values, key by key. A key set in two files of one profile is an
    error; without `base:` a profile must set every key. Checks, each an error naming the key and the file that set
    it (or `--set`): unknown keys (in any file, common.yaml and the bases' files too), wrong types, impossible
    values (each step's config is built: its __post_init__ checks ranges and keys that depend on each other). With
    `steps`, the local model paths those steps read must exist (hub ids pass). The result is ordered as the steps'
    config fields (flat, prefixed keys: what the notebooks' `parameters` cells and `--set` take).
    """
    from fusechat_utils.steps import STEPS, config_class

    folder = profile_dir(profile)
    layers = profile_layers(folder)
    origin: dict[str, tuple[Layer, str]] = {}
    for layer in layers:
        for stem, data in layer.files.items():
            for key in data:
                origin[key] = (layer, stem)
    classes = {step: config_class(step) for step in STEPS}
    order = list(dict.fromkeys(f.name for cls in classes.values() for f in dataclasses.fields(cls)))
    all_fields = set(order)
    merged = {k: origin[k][0].files[origin[k][1]][k] for k in order if k in origin}
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        if key not in all_fields:
            raise ParamError(f"--set {key}: unknown key for profile {folder} (see {folder}/*.yaml)")
        merged[key] = value

    def where(key: str) -> str:
        if key in overrides:
            return "--set"
        layer, stem = origin[key]
        return layer.file(stem)

    for step, cls in classes.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        for layer in layers[::-1]:
            unknown = set(layer.files.get(step, {})) - fields if layer.folder is not None else set()
            if unknown:
                raise ParamError(f"{layer.file(step)}: unknown key(s) {sorted(unknown)} for {cls.__name__}")
        for key in fields & merged.keys():
            check_types(cls, {key: merged[key]}, source=where(key))
    for layer in layers[::-1]:
        for stem, data in layer.files.items():
            unknown = set(data) - all_fields
            if unknown:
                raise ParamError(f"{layer.file(stem)}: unknown key(s) {sorted(unknown)} (no step uses them)")
    missing = [k for k in order if k not in merged]
    if missing:
        raise ParamError(f"{folder}: no value for key(s) {missing}: set them, or name a `{BASE_KEY}:` that does "
                         f"(`{BASE_KEY}: {DEFAULTS}` takes the config dataclasses' defaults)", missing)
    configs = {}
    for step, cls in classes.items():
        fields = [f.name for f in dataclasses.fields(cls)]
        try:
            configs[step] = cls(**{k: merged[k] for k in fields})
        except ValueError as err:
            _raise_at(err, fields, merged, where)
    for step in steps or ():
        fields = {f.name for f in dataclasses.fields(classes[step])}
        check_local_paths({k: merged[k] for k in fields}, source=where)
        try:
            configs[step].check_machine()
        except ParamError as err:
            _raise_at(err, fields, merged, where)
    return merged


def _raise_at(err: ValueError, fields, merged: Mapping[str, Any], where) -> None:
    """Re-raise a config's error prefixed by the file(s) that set the keys at fault."""
    keys = [k for k in getattr(err, "keys", ()) if k in merged] or \
        [k for k in fields if re.search(rf"\b{k}\b", str(err))] or list(fields)
    origins = ", ".join(dict.fromkeys(where(k) for k in keys))
    raise ParamError(f"{origins}: {err}", keys) from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """`["dpo_beta=0.1", "sample_backend=vllm"]` -> typed values (YAML scalars: 0.1 is float, true is bool)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ParamError(f"--set {item!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(raw)
    return out
