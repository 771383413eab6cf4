"""`fusechat params`: every key of each step with its type, default, a profile's resolved value and its help, read
from the config dataclasses (the one source of defaults and help, fusechat_utils/defaults.py) and the profile.

    python -m fusechat_utils params --step 05 --profile llama3.1-8b
"""

from __future__ import annotations

import dataclasses
import typing
from collections import Counter

from fusechat_utils.config import load_profile
from fusechat_utils.steps import config_class, select_steps


def _type_name(field: dataclasses.Field, hints: dict) -> str:
    kind = hints.get(field.name, field.type)
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def rows(profile: str | None = None, steps: str | None = None) -> list[dict]:
    """One row per (step, key): step, key, type, default, value (the profile's, or the default), help."""
    resolved = load_profile(profile) if profile else {}
    out = []
    for step in select_steps(steps):
        cls = config_class(step)
        hints, default = typing.get_type_hints(cls), dataclasses.asdict(cls())
        for field in dataclasses.fields(cls):
            out.append({"step": step, "key": field.name, "type": _type_name(field, hints),
                        "default": default[field.name], "value": resolved.get(field.name, default[field.name]),
                        "help": field.metadata.get("help", "")})
    return out


def render(table: list[dict], profile: str | None) -> str:
    """Text for a terminal: a header per step, then `key (type) = value [default: d]` and the help indented."""
    counts, lines, step = Counter(row["step"] for row in table), [], None
    for row in table:
        if row["step"] != step:
            step = row["step"]
            lines.append(f"\n{step} ({counts[step]} keys"
                         f"{', values of profile ' + profile if profile else ''})")
        changed = f"  [default: {row['default']!r}]" if row["value"] != row["default"] else ""
        lines.append(f"  {row['key']} ({row['type']}) = {row['value']!r}{changed}")
        if row["help"]:
            lines.append(f"      {row['help']}")
    return "\n".join(lines).lstrip("\n")
