"""The config dataclasses are the one source of the parameters' defaults; this writes what is derived from them.

    python -m fusechat_utils.defaults --check   # exit 1 and name every file that drifted from the dataclasses
    python -m fusechat_utils.defaults --write   # rewrite them

Derived files: each step notebook's `parameters` cell (one line per field, `name = default  # help`, in field
order; papermill injects a profile's values after it) and the toy profile `params/toy/` (the defaults as YAML:
keys of several steps in common.yaml, the others in their step's file; comments in the files are kept with the
key they precede). To change a default, edit the dataclass field in the step's module and run `--write`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fusechat_utils.config import PARAMS_DIR, PROJECT_ROOT, load_profile
from fusechat_utils.steps import STEPS, config_class, notebook_path

TOY = "toy"
COMMON = "common"
PARAMETERS_TAG = "parameters"


def defaults(step: str) -> dict[str, Any]:
    """{field: default} of a step's config dataclass, in field order."""
    return dataclasses.asdict(config_class(step)())


def all_defaults() -> dict[str, Any]:
    """Every step's defaults merged (a key several steps share must have one default)."""
    out: dict[str, Any] = {}
    for step in STEPS:
        for key, value in defaults(step).items():
            if key in out and out[key] != value:
                raise ValueError(f"key '{key}' has two defaults: {out[key]!r} and {value!r} ({step})")
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------------------------
# notebooks' parameters cells


def py_literal(value: Any) -> str:
    """A Python literal for a default: strings in double quotes, dicts and lists inline."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no literal for {value!r}")


def parameters_source(step: str) -> str:
    """The `parameters` cell of a step's notebook, from its config dataclass."""
    cls = config_class(step)
    lines = [f"# The defaults of {cls.__module__}.{cls.__name__} (= params/toy/), written by",
             "# `python -m fusechat_utils.defaults --write`: edit them there. A run's values are injected below."]
    values = defaults(step)
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help", "")
        line = f"{f.name} = {py_literal(values[f.name])}"
        lines.append(f"{line}  # {help_text}" if help_text else line)
    return "\n".join(lines)


def notebook_text(step: str, text: str | None = None) -> str:
    """The notebook's JSON with its `parameters` cell written from the dataclass (`text`: the current file)."""
    path = notebook_path(step)
    nb = json.loads(path.read_text() if text is None else text)
    cells = [c for c in nb["cells"] if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path}: needs exactly one cell tagged '{PARAMETERS_TAG}', found {len(cells)}")
    cells[0]["source"] = parameters_source(step).splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------------------------
# profiles as YAML files


def yaml_scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=10**9)
    return text.strip().removesuffix("...").strip()


def yaml_value(value: Any) -> str:
    """`key:` + this: scalars and lists inline, mappings and lists of mappings one item per line."""
    if isinstance(value, Mapping) and value:
        return "".join(f"\n  {yaml_scalar(k)}: {yaml_scalar(v)}" for k, v in value.items())
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return "".join(f"\n- {yaml_scalar(v)}" for v in value)
    return " " + yaml_scalar(value)


def file_of_key() -> dict[str, str]:
    """key -> the profile file it belongs in: common for keys several steps share, else the step's file."""
    users: dict[str, list[str]] = {}
    for step in STEPS:
        for f in dataclasses.fields(config_class(step)):
            users.setdefault(f.name, []).append(step)
    return {k: (COMMON if len(steps) > 1 else steps[0]) for k, steps in users.items()}


@dataclasses.dataclass
class Comments:
    """A YAML file's comments: the leading block, the lines above each key and each key line's trailing one."""

    header: list[str] = dataclasses.field(default_factory=list)
    above: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    inline: dict[str, str] = dataclasses.field(default_factory=dict)


KEY_LINE = re.compile(r"^([A-Za-z_]\w*):(.*)$")


def read_comments(text: str) -> Comments:
    out, pending, seen_key = Comments(), [], False
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            pending.append(line)
            continue
        found = KEY_LINE.match(line)
        if not found:  # a continuation line of a block value
            continue
        key = found.group(1)
        if not seen_key:
            out.header, pending, seen_key = pending, [], True
        if pending:
            out.above[key], pending = pending, []
        for m in re.finditer(r"\s+#\s?", line):  # the first ' #' outside the value
            try:
                same = yaml.safe_load(line[:m.start()]) == yaml.safe_load(line)
            except yaml.YAMLError:
                continue
            if same:
                out.inline[key] = line[m.end():]
                break
    if not seen_key:
        out.header = pending
    return out


def render_profile(values: Mapping[str, Any], comments: Mapping[str, Comments] | None = None) -> dict[str, str]:
    """{file stem: YAML text} of a self-contained profile holding `values` (every key in its file, in field order)."""
    where = file_of_key()
    order = list(dict.fromkeys(f.name for s in STEPS for f in dataclasses.fields(config_class(s))))
    out: dict[str, str] = {}
    for stem in [COMMON, *STEPS]:
        keys = [k for k in order if where[k] == stem and k in values]
        if not keys:
            continue
        c = (comments or {}).get(stem, Comments())
        lines = list(c.header)
        for key in keys:
            lines += c.above.get(key, [])
            line = f"{key}:{yaml_value(values[key])}"
            lines.append(f"{line}  # {c.inline[key]}" if key in c.inline else line)
        text = "\n".join(lines) + "\n"
        loaded = yaml.safe_load(text)
        if loaded != {k: values[k] for k in keys}:
            raise ValueError(f"{stem}.yaml does not read back as the values it was written from: {loaded!r}")
        out[stem] = text
    return out


def write_flat_profile(profile: str | Path, folder: str | Path) -> Path:
    """Write the resolved params of `profile` (its `base:` chain followed) as a self-contained profile folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, text in render_profile(load_profile(profile)).items():
        (folder / f"{stem}.yaml").write_text(text)
    return folder


def toy_texts(folder: Path | None = None) -> dict[Path, str]:
    """{path: text} of the toy profile written from the dataclass defaults, keeping the comments of its files."""
    folder = folder or PARAMS_DIR / TOY
    comments = {p.stem: read_comments(p.read_text()) for p in folder.glob("*.yaml")}
    return {folder / f"{stem}.yaml": text for stem, text in render_profile(all_defaults(), comments).items()}


# --------------------------------------------------------------------------------------------------------------
# check / write


def expected_files() -> dict[Path, str]:
    """Every derived file and the text it must have."""
    out = {notebook_path(step): notebook_text(step) for step in STEPS}
    out.update(toy_texts())
    return out


def stale_files() -> list[Path]:
    """The derived files (and stray toy files) that differ from what the dataclasses give."""
    expected = expected_files()
    stale = [p for p, text in expected.items() if not p.is_file() or p.read_text() != text]
    stale += [p for p in sorted((PARAMS_DIR / TOY).glob("*.yaml")) if p not in expected]
    return stale


def write() -> list[Path]:
    """Rewrite the derived files that drifted; delete toy files no key belongs in. Returns what changed."""
    expected = expected_files()
    changed = []
    for path, text in expected.items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    for path in sorted((PARAMS_DIR / TOY).glob("*.yaml")):
        if path not in expected:
            path.unlink()
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusechat_utils.defaults", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if a derived file differs from the dataclasses")
    mode.add_argument("--write", action="store_true", help="rewrite the derived files from the dataclasses")
    args = parser.parse_args(argv)
    rel = lambda p: p.relative_to(PROJECT_ROOT)  # noqa: E731
    if args.write:
        changed = write()
        print("\n".join(f"wrote {rel(p)}" for p in changed) or "up to date")
        return 0
    stale = stale_files()
    if stale:
        print("out of date with the config dataclasses (run `python -m fusechat_utils.defaults --write`):\n"
              + "\n".join(f"  {rel(p)}" for p in stale), file=sys.stderr)
        return 1
    print("up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
