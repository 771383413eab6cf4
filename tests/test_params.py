"""Wiring: the config dataclasses are the one source of defaults (the notebooks' `parameters` cells and params/toy/
are written from them and must not drift); profiles load, inherit through `base:`, and name the file of a bad key."""

import ast
import dataclasses
import json

import papermill
import pytest
import yaml

from fusechat_utils import defaults as gen
from fusechat_utils.config import PARAMS_DIR, ParamError, load_profile, load_profile_files, parse_set, profile_layers
from fusechat_utils.steps import NOTEBOOKS_DIR, STEPS, config_class, notebook_path

PAPER_PROFILES = ["llama3.1-8b", "qwen2.5-7b", "gemma2-9b", "llama3.2-3b", "llama3.2-1b"]
REAL_PROFILES = ["smollm2"]  # a real model on CPU, an overlay on llama3.2-1b
BASES = ["paper"]  # shared bases: not runnable on their own
PROFILES = ["toy", *PAPER_PROFILES, *REAL_PROFILES]
TARGET_KEYS = {"run_dir", "target_model", "sft_learning_rate", "dpo_learning_rate", "dpo_beta", "dpo_loss_type"}


def notebook_defaults(step):
    return {k: ast.literal_eval(v["default"]) for k, v in papermill.inspect_notebook(str(notebook_path(step))).items()}


def all_fields():
    return {f.name for s in STEPS for f in dataclasses.fields(config_class(s))}


def test_every_folder_under_params_is_a_known_profile_or_base():
    folders = {p.name for p in PARAMS_DIR.iterdir() if p.is_dir() and p.name != "accelerate"}
    assert folders == {*PROFILES, *BASES}


# ---------------------------------------------------------------------------------------------------------------
# one source of defaults


def test_the_derived_files_are_up_to_date_with_the_dataclasses():
    stale = gen.stale_files()
    assert not stale, f"run `python -m fusechat_utils.defaults --write`: {[str(p) for p in stale]}"
    assert gen.main(["--check"]) == 0


@pytest.mark.parametrize("step", list(STEPS))
def test_notebook_parameters_are_the_dataclass_fields_and_defaults(step):
    cls = config_class(step)
    params = papermill.inspect_notebook(str(notebook_path(step)))
    assert list(params) == [f.name for f in dataclasses.fields(cls)]  # papermill reads every line, in order
    assert notebook_defaults(step) == dataclasses.asdict(cls())
    assert {k: v["help"] for k, v in params.items()} == {f.name: f.metadata.get("help", "")
                                                         for f in dataclasses.fields(cls)}


def test_the_toy_profile_is_the_dataclass_defaults():
    assert load_profile("toy") == gen.all_defaults()
    assert [layer.folder for layer in profile_layers("toy")] == [PARAMS_DIR / "toy"]  # no base: sets every key


def test_a_changed_default_makes_the_check_fail_and_write_fixes_it(tmp_path):
    """Drift in either direction is caught: a hand-edited toy file, a hand-edited notebook cell."""
    toy = tmp_path / "toy"
    toy.mkdir()
    for f in (PARAMS_DIR / "toy").glob("*.yaml"):
        (toy / f.name).write_text(f.read_text().replace("dpo_beta: 10.0", "dpo_beta: 5.0"))
    texts = gen.toy_texts(toy)
    assert texts[toy / "06_dpo.yaml"] == (PARAMS_DIR / "toy" / "06_dpo.yaml").read_text()  # written back to 10.0
    assert (toy / "06_dpo.yaml").read_text() != texts[toy / "06_dpo.yaml"]
    nb = json.loads(notebook_path("06_dpo").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = [line.replace("dpo_beta = 10.0", "dpo_beta = 5.0") for line in cell["source"]]
    assert gen.notebook_text("06_dpo", json.dumps(nb)) == notebook_path("06_dpo").read_text()


def test_the_toy_files_keep_their_comments_and_read_back():
    text = (PARAMS_DIR / "toy" / "04_pairs.yaml").read_text()
    assert "# Leave-one-source-out ablation" in text
    assert "seed: 0  # run seed of 04-07" in (PARAMS_DIR / "toy" / "common.yaml").read_text()
    for step in STEPS:
        assert set(load_profile_files("toy")[step]) == {f.name for f in dataclasses.fields(config_class(step))} \
            - {"run_dir", "seed", "target_model"}


def test_py_literal_round_trips():
    for value in [None, True, 0, -1, 1e-06, 5e-05, 10.0, "a \"b\" 'c' 中文", [], {}, {"a": [1, {"b": None}]}]:
        assert ast.literal_eval(gen.py_literal(value)) == value


def test_every_common_key_is_used_by_some_notebook():
    used = set().union(*(papermill.inspect_notebook(str(notebook_path(s))) for s in STEPS))
    assert set(load_profile_files("toy")["common"]) <= used


# ---------------------------------------------------------------------------------------------------------------
# profiles and `base:`


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_resolves_every_key(profile):
    assert set(load_profile(profile)) == all_fields() == set(load_profile("toy"))


@pytest.mark.parametrize("profile", PAPER_PROFILES)
def test_each_paper_target_is_a_short_overlay_on_the_paper_base(profile):
    layers = profile_layers(profile)
    assert [layer.folder for layer in layers] == [PARAMS_DIR / "paper", PARAMS_DIR / profile]
    own = {k for data in layers[-1].files.values() for k in data}
    assert own == TARGET_KEYS
    base = {k for data in layers[0].files.values() for k in data}
    assert base == all_fields() - TARGET_KEYS  # the base never leans on the toy defaults
    assert sum(len(p.read_text().splitlines()) for p in (PARAMS_DIR / profile).glob("*.yaml")) <= 12


def test_the_paper_base_alone_is_incomplete():
    with pytest.raises(ParamError, match=r"params/paper: no value for key\(s\) \[.*'target_model'.*base: defaults"):
        load_profile("paper")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("step", list(STEPS))
def test_step_files_hold_only_their_steps_keys(profile, step):
    fields = {f.name for f in dataclasses.fields(config_class(step))}
    for layer in profile_layers(profile):
        assert set(layer.files.get(step, {})) <= fields


@pytest.fixture
def toy_copy(tmp_path):
    """A user's own profile folder: a copy of params/toy/ to break on purpose."""
    for f in (PARAMS_DIR / "toy").glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    return tmp_path


@pytest.fixture
def overlay(tmp_path):
    """A user's overlay on the paper base, outside params/."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "target.yaml").write_text("base: llama3.1-8b\nrun_dir: outputs/mine\ndpo_beta: 2.5\n")
    return folder


def test_an_overlay_overrides_its_base_key_by_key(overlay):
    params = load_profile(overlay)
    assert params == {**load_profile("llama3.1-8b"), "run_dir": "outputs/mine", "dpo_beta": 2.5}
    assert [layer.folder for layer in profile_layers(overlay)] == [PARAMS_DIR / "paper", PARAMS_DIR / "llama3.1-8b",
                                                                    overlay]
    assert load_profile(overlay, {"dpo_beta": 5.0})["dpo_beta"] == 5.0  # --set beats every file


def test_base_defaults_takes_the_dataclass_defaults(tmp_path):
    (tmp_path / "05_sft.yaml").write_text("base: defaults\nsft_learning_rate: 1.0e-3\n")
    assert load_profile(tmp_path) == {**gen.all_defaults(), "sft_learning_rate": 1e-3}


def test_a_profile_without_base_must_set_every_key(tmp_path):
    (tmp_path / "common.yaml").write_text("seed: 1\n")
    with pytest.raises(ParamError, match=rf"{tmp_path}: no value for key\(s\) \['run_dir', 'prompts_source'"):
        load_profile(tmp_path)


def test_a_base_given_as_a_relative_path(tmp_path, overlay):
    child = tmp_path / "child"
    child.mkdir()
    (child / "common.yaml").write_text("base: ../mine\nseed: 4\n")
    assert load_profile(child) == {**load_profile(overlay), "seed": 4}


@pytest.mark.parametrize("value,expected", [
    ("nope", r"target\.yaml: base 'nope' is not a profile: no folder .*params/nope \(known: .*'defaults'\)"),
    ("./nope", r"target\.yaml: base './nope' is not a folder"),
    (3, r"target\.yaml: key 'base' must be a profile name, a path to a profile folder or 'defaults', got 3"),
])
def test_a_bad_base_names_the_file(overlay, value, expected):
    (overlay / "target.yaml").write_text(yaml.safe_dump({"base": value, "dpo_beta": 2.5}))
    with pytest.raises(ParamError, match=expected):
        load_profile(overlay)


def test_a_base_cycle_is_an_error(tmp_path):
    for a, b in (("a", "b"), ("b", "a")):
        (tmp_path / a).mkdir()
        (tmp_path / a / "common.yaml").write_text(f"base: ../{b}\n")
    with pytest.raises(ParamError, match=r"base makes a cycle: .*a -> .*b -> .*a"):
        load_profile(tmp_path / "a")


def test_base_set_twice_in_one_profile_names_both_files(overlay):
    (overlay / "common.yaml").write_text("base: paper\n")
    with pytest.raises(ParamError, match=r"target\.yaml: key 'base' is already set in common\.yaml"):
        load_profile(overlay)


def test_an_unknown_key_in_the_base_names_the_base_file(tmp_path, overlay):
    base = tmp_path / "base"
    base.mkdir()
    for f in (PARAMS_DIR / "toy").glob("*.yaml"):
        (base / f.name).write_text(f.read_text())
    (base / "06_dpo.yaml").write_text((base / "06_dpo.yaml").read_text() + "dpo_betta: 1.0\n")
    (overlay / "target.yaml").write_text("base: ../base\ndpo_beta: 2.5\n")
    with pytest.raises(ParamError, match=rf"{base / '06_dpo.yaml'}: unknown key\(s\) \['dpo_betta'\]"):
        load_profile(overlay)


def test_a_bad_value_names_the_file_that_set_it(overlay):
    (overlay / "06_dpo.yaml").write_text("dpo_eval_fraction: 1.0\n")
    with pytest.raises(ParamError, match=rf"{overlay / '06_dpo.yaml'}: key 'dpo_eval_fraction' must be < 1"):
        load_profile(overlay)
    (overlay / "06_dpo.yaml").write_text("dpo_global_batch_size: 100\n")  # 100 % (2 x 8): base files named too
    with pytest.raises(ParamError) as err:
        load_profile(overlay)
    assert str(overlay / "06_dpo.yaml") in str(err.value) and "params/paper/06_dpo.yaml" in str(err.value)


def test_a_key_in_the_overlay_and_its_base_is_an_override_not_a_duplicate(overlay):
    (overlay / "06_dpo.yaml").write_text("dpo_learning_rate: 1.0e-07\n")
    assert load_profile(overlay)["dpo_learning_rate"] == 1e-07


def test_write_flat_profile_gives_a_self_contained_copy(tmp_path):
    folder = gen.write_flat_profile("qwen2.5-7b", tmp_path / "flat")
    assert sorted(p.stem for p in folder.glob("*.yaml")) == sorted(["common", *STEPS])
    assert [layer.folder for layer in profile_layers(folder)] == [folder]
    assert load_profile(folder) == load_profile("qwen2.5-7b")


# ---------------------------------------------------------------------------------------------------------------
# notebooks and error messages


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
    assert load_profile("qwen2.5-7b", {"dpo_beta": 5})["dpo_beta"] == 5  # flat keys through an overlay
    with pytest.raises(ParamError, match="--set nope"):
        load_profile("toy", {"nope": 1})
    with pytest.raises(ParamError, match="--set base: unknown key"):
        load_profile("llama3.1-8b", {"base": "toy"})
    with pytest.raises(ParamError, match="--set: key 'seed' must be int"):
        load_profile("toy", {"seed": 1.5})


def test_fusechat_params_lists_every_key_with_type_default_help_and_the_profiles_value():
    from fusechat_utils.cli import main
    from fusechat_utils.param_table import rows

    table = rows("smollm2", "06")
    assert {r["key"] for r in table} == {f.name for f in dataclasses.fields(config_class("06_dpo"))}
    beta = next(r for r in table if r["key"] == "dpo_beta")
    assert (beta["type"], beta["value"], beta["default"]) == ("float", 10.0, load_profile("toy")["dpo_beta"])
    assert all(r["help"] for r in rows())  # every key of every step says what it is
    assert main(["params", "--step", "06", "--profile", "smollm2"]) == 0


def test_fusechat_params_output_names_changed_values(capsys):
    from fusechat_utils.cli import main

    main(["params", "--step", "05", "--profile", "llama3.1-8b"])
    out = capsys.readouterr().out
    assert out.startswith("05_sft (") and "  sft_learning_rate (float) = 5e-06  [default: " in out
