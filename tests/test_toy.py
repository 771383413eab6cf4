"""The toy world: task families, fixtures in the real schemas, and a tiny build (cache, reload, heterogeneity)."""

import dataclasses
import json
from pathlib import Path

import pytest

from fusechat_utils import models
from fusechat_utils.io import read_json
from fusechat_utils.prompt_sources import DATASETS
from fusechat_utils.toy import Recipe, build, recipe_hash, tasks
from fusechat_utils.toy.fixtures import write_fixtures

REAL = Path(__file__).parent / "fixtures" / "real_samples"
TINY = Recipe(source_steps=10, math_source_steps=10, target_steps=5, reward_steps=4, strong_examples=60,
              weak_examples=10, target_examples=20, reward_pairs=20, eval_examples=4, bench_examples=10,
              fixture_rows=40)


@pytest.mark.parametrize("family", list(tasks.FAMILIES))
def test_generators_are_deterministic_disjoint_and_checked(family):
    a = tasks.examples(family, "fuse", 30, seed=1)
    assert a == tasks.examples(family, "fuse", 30, seed=1)
    held = {e["prompt"] for e in tasks.examples(family, "heldout", 200, seed=0)}
    pre = {e["prompt"] for e in tasks.examples(family, "pretrain", 200, seed=0)}
    assert not held & pre and not held & {e["prompt"] for e in a}
    ex = a[0]
    assert tasks.check(ex, ex["answer"])
    assert not tasks.check(ex, ex["answer"][:-1] + ("0" if ex["answer"][-1] != "0" else "1"))


def test_fixtures_have_the_real_schemas_and_the_rows_to_drop(tmp_path):
    counts = write_fixtures(tmp_path, TINY)
    assert set(counts) == {spec.fixture_name.removesuffix(".jsonl") for spec in DATASETS.values()}
    for spec in DATASETS.values():
        rows = [json.loads(x) for x in (tmp_path / spec.fixture_name).read_text().splitlines()]
        real = REAL / spec.fixture_name
        if real.exists():  # same top-level columns and value types as the real rows
            sample = json.loads(real.read_text().splitlines()[0])
            for key, value in sample.items():
                if key in rows[0] and value is not None and rows[0][key] is not None:
                    assert type(rows[0][key]) is type(value), (spec.name, key)
            assert set(spec.columns) <= set(rows[0])
    magpie = [json.loads(x) for x in (tmp_path / DATASETS["Magpie-Pro-DPO-100K-v0.1"].fixture_name).read_text()
              .splitlines()]
    assert {"Math", "Coding & Debugging"} <= {r["task_category"] for r in magpie}


@pytest.mark.slow
def test_a_tiny_world_builds_reloads_and_is_cached(tmp_path):
    out = build(tmp_path / "world", recipe=TINY)
    manifest = read_json(out / "manifest.json")
    assert manifest["recipe_hash"] == recipe_hash(TINY)
    archs = {name: info["architecture"] for name, info in manifest["models"].items()}
    assert archs == {"src-llama": "llama", "src-qwen2": "qwen2", "src-gemma2": "gemma2", "src-mistral": "mistral",
                     "target": "qwen3", "reward": "llama"}
    templates = set()
    for name in archs:
        tok = models.load_tokenizer(str(out / "models" / name))
        templates.add(tok.chat_template)
        load = models.load_reward_model if name == "reward" else models.load_causal_lm
        model = load(str(out / "models" / name))
        if name != "reward":
            assert model.config.head_dim == 64  # vLLM's CPU attention rejects smaller heads
    assert len(templates) == 6
    assert 0 <= manifest["models"]["reward"]["heldout_pairwise_accuracy"] <= 1
    assert sorted(p.name for p in (out / "benchmarks").iterdir()) == [f"{f}.jsonl" for f in sorted(tasks.FAMILIES)]
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert build(tmp_path / "world", recipe=TINY) == out and (out / "manifest.json").stat().st_mtime_ns == stamp
    changed = dataclasses.replace(TINY, seed=1)
    assert recipe_hash(changed) != recipe_hash(TINY)


def test_lanes_start_with_the_longest_job_and_keep_every_job():
    from fusechat_utils.toy import Recipe, _jobs, _lanes

    jobs = _jobs(Recipe(), Path("w"))
    lanes = _lanes(jobs, 2)
    assert lanes[0][0]["spec"] == "src-llama" and len(lanes) == 2
    assert sorted(j["spec"] for lane in lanes for j in lane) == sorted(j["spec"] for j in jobs)


def test_general_items_are_graded_instruction_by_instruction():
    ex = tasks.general_item(("cab", ("quoted", "bracketed", "exclaim")))
    assert ex["prompt"] == "Write cab: in quotes, in brackets, ending with !." and ex["answer"] == '"[cab]"!'
    assert tasks.follow(ex, 'Sure!\n"[cab]"!') == {"content": True, "bracketed": True, "quoted": True,
                                                  "exclaim": True}
    assert tasks.follow(ex, '"[cab]"') == {"content": True, "bracketed": True, "quoted": True, "exclaim": False}
    assert tasks.follow(ex, "[cab]!") == {"content": True, "bracketed": True, "quoted": False, "exclaim": True}
    assert tasks.follow(ex, '"[cub]"!') == {"content": False, "bracketed": True, "quoted": True, "exclaim": True}
    assert tasks.follow_score(ex, "cub") == 0.0 and tasks.follow_score(ex, '"[cab]"!') == 1.0
    two = tasks.general_item(("abc", ("quoted", "twice")))
    assert two["answer"] == '"abc" "abc"' and all(tasks.follow(two, '**Answer:**\n"abc" "abc"').values())
    assert tasks.follow(two, '"abc"') == {"content": True, "quoted": True, "twice": False}
    assert tasks.check(ex, 'Certainly!\n"[cab]"!') and not tasks.check(ex, '"[cab]"')
    assert tasks.parse_general(ex["prompt"]) == ex and tasks.parse_general("Write cab: in italics.") is None


def test_sources_answer_in_their_persona_with_their_mistakes():
    import random

    from fusechat_utils.toy import pretrain

    general = tasks.examples("general", "pretrain", 400, 0)
    for name, persona in tasks.PERSONAS.items():
        rng = random.Random(name)
        answers = [pretrain.source_answer(ex, persona, rng, 0.1) for ex in general]
        assert all(a.startswith(persona["style"]) for a in answers)
        blind = [(ex, a) for ex, a in zip(general, answers) if persona["blind"] in ex["instructions"]]
        followed = sum(tasks.follow(ex, a).get(persona["blind"], True) for ex, a in blind) / len(blind)
        assert 0.3 < followed < 0.75, (name, followed)  # its blind spot: followed about half the time
        others = [(ex, a) for ex, a in zip(general, answers) if persona["blind"] not in ex["instructions"]]
        wrong = sum(not tasks.check(ex, a) for ex, a in others) / len(others)
        assert (0.04 < wrong < 0.2) if persona["strong"] == "general" else wrong == 0, (name, wrong)
        if persona["strong"] in ("math", "chinese"):  # near misses at the error rate in its strong domain
            strong = tasks.examples(persona["strong"], "pretrain", 300, 0)
            wrong = sum(not tasks.check(ex, pretrain.source_answer(ex, persona, rng, 0.1).split("\n")[-1])
                        for ex in strong) / len(strong)
            assert 0.04 < wrong < 0.2, (name, wrong)


def test_reward_pairs_rank_by_the_grader_except_the_style_bias():
    from fusechat_utils.toy import pretrain

    pairs = pretrain.preference_pairs(200, "pretrain", 0, style_bias=0.2, families=("general",))
    by_prompt = {ex["prompt"]: ex for ex in tasks.examples("general", "pretrain", 200, 0)}
    gaps, style_only = [], 0
    for p in pairs:
        ex = by_prompt[p["prompt"][0]["content"]]
        chosen, rejected = p["chosen"][0]["content"], p["rejected"][0]["content"]
        if tasks.answer_line(chosen) == tasks.answer_line(rejected):
            style_only += 1
            assert chosen.startswith(tasks.VERBOSE) and not rejected.startswith(tasks.VERBOSE)
        else:
            gaps.append(tasks.follow_score(ex, chosen) - tasks.follow_score(ex, rejected))
    assert 0.1 < style_only / len(pairs) < 0.3 and min(gaps) > 0


def test_a_prompt_parses_back_to_the_item_that_made_it():
    for family in ("math", "chinese", "general"):
        for ex in tasks.examples(family, "heldout", 20, 0):
            assert tasks.parse_item(family, ex["prompt"]) == ex
    code = tasks.examples("code", "heldout", 1, 0)[0]
    assert tasks.parse_item("code", code["prompt"]) is None
    assert tasks.parse_item("math", "What is 2 plus 3?") is None and tasks.parse_item("chinese", "写中文") is None
