"""Wiring: profiles load, profile keys == notebook parameters == config fields, notebook defaults == toy profile."""

import ast
import dataclasses
import json

import papermill
import pytest
import yaml

from fusechat_utils.config import PARAMS_DIR, ParamError, load_profile, load_profile_files, parse_set
from fusechat_utils.steps import NOTEBOOKS_DIR, STEPS, config_class, notebook_path

PROFILES = sorted(p.name for p in PARAMS_DIR.iterdir() if p.is_dir() and p.name != "accelerate")
PAPER_PROFILES = ["llama3.1-8b", "qwen2.5-7b", "gemma2-9b", "llama3.2-3b", "llama3.2-1b"]


def notebook_defaults(step):
    return {k: ast.literal_eval(v["default"]) for k, v in papermill.inspect_notebook(str(notebook_path(step))).items()}


def test_the_paper_profiles_and_toy_exist():
    assert set(PROFILES) >= {"toy", *PAPER_PROFILES}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_loads_with_the_same_keys_as_toy(profile):
    params = load_profile(profile)
    assert set(params) == set(load_profile("toy"))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("step", list(STEPS))
def test_profile_keys_match_the_notebook_parameters(profile, step):
    files = load_profile_files(profile)
    nb_keys = set(papermill.inspect_notebook(str(notebook_path(step))))
    common = set(files["common"])
    assert set(files[step]) | (common & nb_keys) == nb_keys
    assert {f.name for f in dataclasses.fields(config_class(step))} == nb_keys


@pytest.mark.parametrize("step", list(STEPS))
def test_notebook_defaults_equal_the_toy_profile_and_the_dataclass(step):
    defaults = notebook_defaults(step)
    toy = load_profile("toy")
    assert defaults == {k: toy[k] for k in defaults}
    cls = config_class(step)
    assert dataclasses.asdict(cls()) == defaults


def test_every_common_key_is_used_by_some_notebook():
    used = set().union(*(papermill.inspect_notebook(str(notebook_path(s))) for s in STEPS))
    assert set(load_profile_files("toy")["common"]) <= used


@pytest.mark.parametrize("path", sorted(NOTEBOOKS_DIR.rglob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_thin_stripped_and_have_one_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path}: needs exactly one cell tagged 'parameters'"
    for cell in code:
        assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path}: commit without outputs"
        tree = ast.parse("".join(cell["source"]))
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))], \
            f"{path}: no def/class/lambda in notebooks; put logic in fusechat_utils"


@pytest.fixture
def toy_copy(tmp_path):
    """A user's own profile folder: a copy of params/toy/ to break on purpose."""
    for f in (PARAMS_DIR / "toy").glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    return tmp_path


def test_an_unknown_key_names_the_key_and_the_file(toy_copy):
    (toy_copy / "04_pairs.yaml").write_text((toy_copy / "04_pairs.yaml").read_text() + "pairs_gapmin: 0.5\n")
    with pytest.raises(ParamError, match=r"04_pairs\.yaml.*pairs_gapmin"):
        load_profile(toy_copy)


def test_a_wrong_type_names_the_key_and_the_file(toy_copy):
    data = yaml.safe_load((toy_copy / "common.yaml").read_text())
    data["seed"] = "zero"
    (toy_copy / "common.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ParamError, match=r"common\.yaml: key 'seed' must be int, got 'zero'"):
        load_profile(toy_copy)


def test_a_key_set_twice_is_an_error(toy_copy):
    (toy_copy / "01_prompts.yaml").write_text((toy_copy / "01_prompts.yaml").read_text() + "seed: 3\n")
    with pytest.raises(ParamError, match=r"key 'seed' is already set in (common|01_prompts)\.yaml"):
        load_profile(toy_copy)


def test_overrides_are_typed_and_checked():
    assert parse_set(["seed=3", "prompts_source=hub", "prompts_filter_code_math=false"]) == {
        "seed": 3, "prompts_source": "hub", "prompts_filter_code_math": False}
    assert load_profile("toy", {"seed": 7})["seed"] == 7
    with pytest.raises(ParamError, match="--set nope"):
        load_profile("toy", {"nope": 1})
    with pytest.raises(ParamError, match="--set: key 'seed' must be int"):
        load_profile("toy", {"seed": 1.5})
