"""03_scoring and 07_eval resume: committed blocks/parts are kept (not rewritten), only missing work is done, the
result equals an uninterrupted run; a changed param is an error naming it, a changed input moves the chunks aside.
(The real SIGKILL test through the runner is tests/test_kill_resume.py.)"""

import shutil

import pandas as pd
import pytest

from eval_world import build_models, write_toy_benchmarks
from fusechat_utils import scoring, shards
from fusechat_utils.evaluation import EvalConfig, runners
from fusechat_utils.evaluation import run as run_eval
from fusechat_utils.scoring import ScoreConfig
import test_scoring
from test_scoring import scoring_tables

tiny_rm, fake_verify = test_scoring.tiny_rm, test_scoring.fake_verify  # fixtures shared with test_scoring


class Killed(Exception):
    """Stands for a kill right after the n-th commit: everything committed so far stays, nothing else happens."""


def stat_of(folder, pattern):
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.glob(pattern))}


# ------------------------------------------------------------------------------------------------------------ 03


def scoring_run_dir(root, prompts, responses):
    (root / "01_prompts").mkdir(parents=True)
    (root / "02_sampling").mkdir()
    prompts.to_parquet(root / "01_prompts" / "prompts.parquet")
    responses.to_parquet(root / "02_sampling" / "responses.parquet")
    return root


def score_cfg(root, rm_path, **kw):
    return ScoreConfig(run_dir=str(root), score_reward_model=rm_path, score_dtype="float32", score_chunk_size=2, **kw)


def test_scoring_resumes_after_a_kill_and_equals_the_uninterrupted_run(tiny_rm, fake_verify, tmp_path, monkeypatch):
    prompts, responses = scoring_tables()
    rm_path = tiny_rm[1].name_or_path
    full = scoring_run_dir(tmp_path / "full", prompts, responses)
    assert scoring.run(score_cfg(full, rm_path))["blocks"] == 3

    killed = scoring_run_dir(tmp_path / "killed", prompts, responses)
    real_write, writes = shards.write_parquet_atomic, []

    def write_then_die(path, df):
        real_write(path, df)
        writes.append(path.name)
        if len(writes) == 2:
            raise Killed

    monkeypatch.setattr(shards, "write_parquet_atomic", write_then_die)
    with pytest.raises(Killed):
        scoring.run(score_cfg(killed, rm_path))
    monkeypatch.setattr(shards, "write_parquet_atomic", real_write)
    chunks = killed / "03_scoring" / "chunks"
    before = stat_of(chunks, "block-*.parquet")
    assert list(before) == ["block-000000.parquet", "block-000001.parquet"]
    assert not (killed / "03_scoring" / "scored.parquet").exists()

    scored_blocks = []
    real_score = scoring.score_block
    monkeypatch.setattr(scoring, "score_block", lambda cfg, rm, rows: scored_blocks.append(len(rows)) or
                        real_score(cfg, rm, rows))
    result = scoring.run(score_cfg(killed, rm_path))
    assert scored_blocks == [2] and result["resumed_blocks"] == 2  # only the missing block was scored
    after = stat_of(chunks, "block-*.parquet")
    assert {k: after[k] for k in before} == before  # committed blocks untouched: same inode, mtime, bytes
    for name in ("scored.parquet", "summary.csv"):
        assert (killed / "03_scoring" / name).read_bytes() == (full / "03_scoring" / name).read_bytes(), name
    assert not list(chunks.glob(".*"))  # no temporary file left behind

    scored_blocks.clear()  # a finished step run again scores nothing and writes the same file
    scoring.run(score_cfg(killed, rm_path))
    assert scored_blocks == []
    assert (killed / "03_scoring" / "scored.parquet").read_bytes() == (full / "03_scoring" / "scored.parquet").read_bytes()


def test_scoring_refuses_changed_params_and_sets_stale_inputs_aside(tiny_rm, fake_verify, tmp_path):
    prompts, responses = scoring_tables()
    rm_path = tiny_rm[1].name_or_path
    root = scoring_run_dir(tmp_path, prompts, responses)
    scoring.run(score_cfg(root, rm_path))
    chunks = root / "03_scoring" / "chunks"
    before = stat_of(chunks, "*")
    with pytest.raises(ValueError, match=r"score_max_length=1024; this run has score_max_length=512") as err:
        scoring.run(score_cfg(root, rm_path, score_max_length=512))
    assert "nothing was changed" in str(err.value)
    assert stat_of(chunks, "*") == before
    scoring.run(score_cfg(root, rm_path, score_code_workers=1))  # what the values do not depend on may change

    # 02 was rerun and one response changed: the old blocks are stale, kept aside, and everything is rescored
    responses.loc[0, "response"] = "no"
    responses.to_parquet(root / "02_sampling" / "responses.parquet")
    scoring.run(score_cfg(root, rm_path))
    (stale,) = (root / "03_scoring").glob("chunks.stale-*")
    assert stat_of(stale, "*") == before
    fresh = scoring_run_dir(tmp_path / "fresh", prompts, responses)
    scoring.run(score_cfg(fresh, rm_path))
    assert (root / "03_scoring" / "scored.parquet").read_bytes() == (fresh / "03_scoring" / "scored.parquet").read_bytes()


def test_a_foreign_block_is_an_error_naming_the_file(tiny_rm, fake_verify, tmp_path):
    prompts, responses = scoring_tables()
    rm_path = tiny_rm[1].name_or_path
    root = scoring_run_dir(tmp_path, prompts, responses)
    scoring.run(score_cfg(root, rm_path))
    block = root / "03_scoring" / "chunks" / "block-000001.parquet"
    df = pd.read_parquet(block)
    df.loc[0, "sample_index"] = 99
    df.to_parquet(block)
    with pytest.raises(ValueError, match=r"block-000001.parquet: its \(prompt_id, source_model, sample_index\) keys"):
        scoring.run(score_cfg(root, rm_path))


# ------------------------------------------------------------------------------------------------------------ 07


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalworld")
    paths = build_models(root)
    paths["bench"] = write_toy_benchmarks(root / "bench")
    return root, paths


def eval_cfg(run_dir, paths, **kw):
    kw = {"eval_limit": 2, "eval_max_tokens_cap": 8, "eval_max_new_tokens": 4, "eval_benchmarks": ["toy", "HumanEval"], **kw}
    return EvalConfig(run_dir=str(run_dir), target_model=paths["target"], eval_toy_benchmarks_dir=paths["bench"],
                      eval_reward_model=paths["reward"], **kw)


def eval_run_dir(root, paths):
    shutil.copytree(paths["target"], root / "05_sft" / "model")
    return root


def outputs(run_dir):
    step = run_dir / "07_eval"  # the stages' model paths name the run folder
    return {p.relative_to(step).as_posix(): p.read_bytes().replace(str(run_dir).encode(), b"RUN")
            for p in sorted(step.rglob("*")) if p.is_file() and p.name != "eval_settings.json"}


def test_eval_resumes_per_stage_and_benchmark_and_equals_the_uninterrupted_run(world, tmp_path, monkeypatch):
    _, paths = world
    full = eval_run_dir(tmp_path / "full", paths)
    run_eval(eval_cfg(full, paths))

    killed = eval_run_dir(tmp_path / "killed", paths)
    real_commit, commits = runners.commit_part, []

    def commit_then_die(*args):
        real_commit(*args)
        commits.append(args[1:3])
        if len(commits) == 3:
            raise Killed

    monkeypatch.setattr(runners, "commit_part", commit_then_die)
    with pytest.raises(Killed):
        run_eval(eval_cfg(killed, paths))
    monkeypatch.setattr(runners, "commit_part", real_commit)
    assert commits == [("base", "toy"), ("base", "HumanEval"), ("sft", "toy")]
    parts = killed / "07_eval" / "parts"
    before = stat_of(parts, "*/*.json") | stat_of(killed / "07_eval" / "samples", "*/*.jsonl")

    ran = []
    real_run = runners.run_benchmark
    monkeypatch.setattr(runners, "run_benchmark", lambda cfg, bench, stage, model: ran.append((stage, bench)) or
                        real_run(cfg, bench, stage, model))
    run_eval(eval_cfg(killed, paths))
    assert ran == [("sft", "HumanEval")]
    after = stat_of(parts, "*/*.json") | stat_of(killed / "07_eval" / "samples", "*/*.jsonl")
    assert {k: after[k] for k in before} == before
    assert outputs(killed) == outputs(full)

    ran.clear()
    with pytest.raises(ValueError, match=r"eval_max_new_tokens=4; this run has eval_max_new_tokens=5"):
        run_eval(eval_cfg(killed, paths, eval_max_new_tokens=5))
    run_eval(eval_cfg(killed, paths, eval_benchmarks=["toy"]))  # a subset: read back, nothing evaluated
    assert ran == []

    # the SFT model was retrained: its stage's parts are stale (moved aside), the base's are kept
    config = killed / "05_sft" / "model" / "generation_config.json"
    config.write_text(config.read_text().replace("{", '{"retrained": 1,', 1))
    run_eval(eval_cfg(killed, paths))
    assert ran == [("sft", "toy"), ("sft", "HumanEval")]
    assert len(list(parts.glob("sft.stale-*"))) == 1 and not list(parts.glob("base.stale-*"))
