"""environment.yml gives conda users the same pins as pyproject.toml."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_pins_equal_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip if not p.startswith("--")}
    assert listed == pins
    assert "python=3.11" in env["dependencies"]


def test_makefile_installs_the_cpu_torch_first():
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.index("pip install -q torch==2.13.0") < makefile.index("pip install -q -e '.[dev]'")
