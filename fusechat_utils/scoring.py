"""Step 03: score every sampled response with the reward model, and verify math answers and code (recipe §1.3, §5).

Usage (what notebooks/03_scoring.ipynb does):
    cfg = ScoreConfig.from_params(globals()); result = scoring.run(cfg)
    scores = scoring.rm_scores(model, tokenizer, prompts, responses, batch_size=8)   # any RM, any texts

Reward model: (prompt, response) goes through the REWARD MODEL's own chat template as a user and an assistant turn,
no generation prompt (how SimPO and the FuseChat co-authors call ArmoRM). Two kinds behind one function:
ArmoRM (custom remote code; the score is `output.score`; batches need right padding with its pad id 128256) and
plain sequence-classification RMs (`logits[:, 0]`); `score_rm_kind="auto"` uses `output.score` when present.
Batches are formed over length-sorted inputs (less padding) and scores are returned in the input order.
Math: `verify.check_math(response, gold)`. Code: `verify.extract_code` -> `verify.static_check` ->
`verify.run_code_many` on the prompt's tests; a program failing the static check is not run.

Resume: the joined responses are cut into blocks of `score_chunk_size` rows (in responses.parquet's order); each
block is scored, verified and committed as `chunks/block-<k>.parquet` (keys + rm_score + verify columns, written
tmp + os.replace). A rerun scores only the missing blocks, under the values in `chunks/scoring_params.json`: a
changed param is an error naming it (nothing deleted); changed inputs (02's responses, the RM's files) move the
stale chunks aside. An uninterrupted run goes through the same blocks, so both write the same scored.parquet.
A shard job (`run_shard`, `fusechat run --shard i/N`) scores consecutive blocks of the same cut into
`chunks/shard-<i>-of-<N>/`, and `run` over the finished shards reads every block from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from fusechat_utils.config import StepConfig

RESPONSE_COLUMNS = ["prompt_id", "dataset", "category", "source_model", "sample_index", "seed", "response",
                    "finish_reason", "n_tokens"]
PROMPT_COLUMNS = ["prompt_id", "prompt", "gold_answer", "tests", "entry_point"]
VERIFY_COLUMNS = ["correct", "static_ok", "tests_passed", "verify_reason"]
RM_KINDS = ("auto", "armorm", "sequence_classification")
KEY = ["prompt_id", "source_model", "sample_index"]
CHUNKS = "chunks"
RESUME_FILE = "scoring_params.json"
# What a committed block's values depend on (score_code_workers does not: it only runs programs in parallel).
RESUME_KEYS = ("score_reward_model", "score_rm_kind", "score_batch_size", "score_max_length", "score_dtype",
               "score_trust_remote_code", "score_pad_token_id", "score_code_timeout_s", "score_chunk_size")
# Upstream artifacts: when they change, the committed blocks are stale (moved aside), not a mistake (an error).
RESUME_INPUTS = ("inputs_hash", "reward_model_hash")
SCORED_INPUT_COLUMNS = ["prompt_id", "source_model", "sample_index", "category", "prompt", "response",
                        "gold_answer", "tests", "entry_point"]


@dataclass
class ScoreConfig(StepConfig):
    STEP: ClassVar[str] = "03_scoring"

    score_reward_model: str = field(default="outputs/toy_world/models/reward",
                                    metadata={"help": "reward model: hub id or local folder"})
    score_rm_kind: str = field(default="auto", metadata={"help": "auto | armorm | sequence_classification"})
    score_batch_size: int = field(default=64, metadata={"help": "responses per RM forward pass"})
    score_max_length: int = field(default=1024, metadata={"help": "RM input tokens; longer inputs are cut"})
    score_dtype: str = field(default="auto", metadata={"help": "RM dtype: auto | bfloat16 | float32"})
    score_trust_remote_code: bool = field(default=False, metadata={"help": "ArmoRM needs its remote code"})
    score_pad_token_id: int | None = field(default=None, metadata={"help": "pad id for batches (ArmoRM 128256)"})
    score_code_timeout_s: float = field(default=10.0, metadata={"help": "wall-clock limit per code program"})
    score_code_workers: int = field(default=2, metadata={"help": "code programs run in parallel"})
    score_chunk_size: int = field(default=4096, metadata={
        "help": "responses per committed block (a killed run resumes at the first missing block)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.score_rm_kind not in RM_KINDS:
            raise ValueError(f"score_rm_kind={self.score_rm_kind!r}, expected one of {RM_KINDS}")
        if self.score_batch_size < 1 or self.score_max_length < 8:
            raise ValueError("score_batch_size must be >= 1 and score_max_length >= 8")
        if self.score_chunk_size < 1:
            raise ValueError(f"score_chunk_size must be >= 1, got {self.score_chunk_size}")


# ----------------------------------------------------------------------------------------------------------------
# reward model


def encode_pairs(tokenizer, prompts: list[str], responses: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each (user, assistant) conversation through the RM's chat template, cut at max_length."""
    ids = []
    for prompt, response in zip(prompts, responses):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        # The template already holds the BOS token; adding it again shifts every score.
        ids.append(tokenizer(text, add_special_tokens=False)["input_ids"][:max_length])
    return ids


def _batch_scores(model, batch: list[list[int]], pad_id: int, kind: str):
    import torch

    width = max(len(x) for x in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ids in enumerate(batch):  # right padding: ArmoRM finds the last real token through the pad id
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device))
    score = getattr(out, "score", None)
    if kind == "armorm" or (kind == "auto" and score is not None):
        if score is None:
            raise ValueError("score_rm_kind='armorm' but the reward model's output has no .score")
        return score.float().reshape(len(batch), -1)[:, 0].tolist()
    return out.logits.float()[:, 0].tolist()


def rm_scores(model, tokenizer, prompts: list[str], responses: list[str], *, batch_size: int = 8,
              max_length: int = 4096, kind: str = "auto", pad_token_id: int | None = None,
              progress: bool = True) -> list[float]:
    """One float per (prompt, response), in input order; batched over length-sorted inputs."""
    from tqdm.auto import tqdm

    if kind not in RM_KINDS:
        raise ValueError(f"kind={kind!r}, expected one of {RM_KINDS}")
    pad_id = _pad_id(model, tokenizer, pad_token_id)
    encoded = encode_pairs(tokenizer, prompts, responses, max_length)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    scores: list[float] = [0.0] * len(encoded)
    for start in tqdm(range(0, len(order), batch_size), desc="reward model", disable=not progress):
        idx = order[start : start + batch_size]
        for i, s in zip(idx, _batch_scores(model, [encoded[i] for i in idx], pad_id, kind)):
            scores[i] = s
    return scores


def _pad_id(model, tokenizer, pad_token_id: int | None) -> int:
    """The pad id the model itself looks for: config's, else the tokenizer's; also set on the config."""
    pad = pad_token_id if pad_token_id is not None else getattr(model.config, "pad_token_id", None)
    pad = pad if pad is not None else tokenizer.pad_token_id
    if pad is None:
        raise ValueError("reward model has no pad token id: set score_pad_token_id")
    model.config.pad_token_id = pad  # sequence-classification heads locate the last token through it
    return int(pad)


def load_rm(cfg: ScoreConfig):
    from fusechat_utils.models import device, load_reward_model, load_tokenizer

    tokenizer = load_tokenizer(cfg.score_reward_model, padding_side="right",
                               trust_remote_code=cfg.score_trust_remote_code)
    model = load_reward_model(cfg.score_reward_model, dtype=cfg.score_dtype,
                              trust_remote_code=cfg.score_trust_remote_code)
    return model.to(device()).eval(), tokenizer


# ----------------------------------------------------------------------------------------------------------------
# math and code verification


def _blank(n: int) -> dict[str, list]:
    return {c: [None] * n for c in VERIFY_COLUMNS}


def verify_math(rows: pd.DataFrame, progress: bool = True) -> dict[str, list]:
    """correct = verify.check_math(response, gold); no gold answer -> None with a reason."""
    from tqdm.auto import tqdm

    from fusechat_utils.verify import check_math

    out = _blank(len(rows))
    pairs = tqdm(zip(rows["response"], rows["gold_answer"]), total=len(rows), desc="math answers",
                 disable=not progress)
    for i, (response, gold) in enumerate(pairs):
        if gold is None or (isinstance(gold, float) and pd.isna(gold)) or not str(gold).strip():
            out["verify_reason"][i] = "no_gold_answer"
            continue
        out["correct"][i] = bool(check_math(response, str(gold)))
        out["verify_reason"][i] = "correct" if out["correct"][i] else "wrong_answer"
    return out


def verify_code(rows: pd.DataFrame, timeout_s: float, workers: int) -> dict[str, list]:
    """static_ok from verify.static_check; tests_passed from running the program + the prompt's tests."""
    from fusechat_utils.verify import extract_code, run_code_many, static_check

    out = _blank(len(rows))
    to_run: list[tuple[int, str, str]] = []
    for i, (response, tests, entry) in enumerate(zip(rows["response"], rows["tests"], rows["entry_point"])):
        program = extract_code(response)
        ok, why = static_check(program, entry if isinstance(entry, str) and entry else None)
        out["static_ok"][i] = bool(ok)
        if not ok:
            out["tests_passed"][i], out["verify_reason"][i] = False, f"static: {why}"
        elif not isinstance(tests, str) or not tests.strip():
            out["verify_reason"][i] = "no_tests"
        else:
            to_run.append((i, program, tests))
    results = run_code_many([(p, t) for _, p, t in to_run], timeout_s=timeout_s, workers=workers) if to_run else []
    for (i, _, _), result in zip(to_run, results):
        out["tests_passed"][i] = bool(result.passed)
        out["verify_reason"][i] = "passed" if result.passed else f"tests: {result.reason}"
    return out


def verify_rows(df: pd.DataFrame, timeout_s: float = 10.0, workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """The four verify columns for every row: math and code rows checked, others None."""
    out = pd.DataFrame(_blank(len(df)), index=df.index, dtype=object)
    for category, check in (("math", lambda r: verify_math(r, progress)),
                            ("code", lambda r: verify_code(r, timeout_s, workers))):
        rows = df[df["category"] == category]
        if len(rows):
            out.loc[rows.index, VERIFY_COLUMNS] = pd.DataFrame(check(rows), index=rows.index, dtype=object)
    return out


# ----------------------------------------------------------------------------------------------------------------
# the step


def join_prompts(responses: pd.DataFrame, prompts: pd.DataFrame, where: str) -> pd.DataFrame:
    """Responses with their prompt's text, gold answer, tests and entry point; a response without one is an error."""
    missing = [c for c in RESPONSE_COLUMNS if c not in responses.columns]
    if missing:
        raise ValueError(f"{where}: responses missing column(s) {missing}")
    # 01's prompt fields are the reference: a copy carried by 02 would otherwise become prompt_x / prompt_y.
    responses = responses.drop(columns=[c for c in PROMPT_COLUMNS[1:] if c in responses.columns])
    merged = responses.merge(prompts[PROMPT_COLUMNS], on="prompt_id", how="left", validate="many_to_one",
                             indicator=True)
    orphan = merged[merged["_merge"] != "both"]
    if len(orphan):
        r = orphan.iloc[0]
        raise ValueError(f"{where}: row {orphan.index[0]} field 'prompt_id' {r['prompt_id']!r} "
                         f"({r['source_model']} #{r['sample_index']}) is not in prompts.parquet")
    return merged.drop(columns="_merge")


def summary_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Per category and source: responses, mean/std RM score, math accuracy, code pass rate."""
    grouped = scored.groupby(["category", "source_model"])
    table = grouped["rm_score"].agg(responses="count", rm_mean="mean", rm_std="std")
    table["math_correct"] = grouped["correct"].agg(lambda s: s.dropna().astype(bool).mean() if s.notna().any() else None)
    table["code_passed"] = grouped["tests_passed"].agg(
        lambda s: s.dropna().astype(bool).mean() if s.notna().any() else None)
    return table.reset_index()


def inputs_hash(df: pd.DataFrame) -> str:
    """Content hash of what the scores depend on, row order included (vectorized: cheap for millions of rows)."""
    import hashlib

    cols = df[SCORED_INPUT_COLUMNS].astype(str)  # mixed None/str/int columns hash the same way on every run
    return hashlib.sha256(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes()).hexdigest()


def resume_values(cfg: ScoreConfig, df: pd.DataFrame) -> dict[str, Any]:
    from pathlib import Path

    from fusechat_utils.io import hash_path

    rm = Path(cfg.score_reward_model)
    return {**{k: getattr(cfg, k) for k in RESUME_KEYS}, "inputs_hash": inputs_hash(df),
            "reward_model_hash": hash_path(rm) if rm.exists() else None}


def block_path(chunk_dir, k: int):
    return chunk_dir / f"block-{k:06d}.parquet"


def read_block(path, rows: pd.DataFrame) -> pd.DataFrame:
    """A committed block; its keys must be exactly the rows it stands for (else it is not this run's block)."""
    block = pd.read_parquet(path)
    if len(block) != len(rows) or not (block[KEY].astype(str).to_numpy() == rows[KEY].astype(str).to_numpy()).all():
        raise ValueError(f"{path}: its (prompt_id, source_model, sample_index) keys are not those of rows "
                         f"{rows.index[0]}..{rows.index[-1]} of this run; move {path.parent} aside to score again")
    return block


def score_block(cfg: ScoreConfig, rm, rows: pd.DataFrame) -> pd.DataFrame:
    """rm_score and the verify columns of one block, with its keys: what a chunk file holds."""
    model, tokenizer = rm
    out = rows[KEY].reset_index(drop=True)
    out["rm_score"] = rm_scores(model, tokenizer, rows["prompt"].tolist(), rows["response"].tolist(),
                                batch_size=cfg.score_batch_size, max_length=cfg.score_max_length,
                                kind=cfg.score_rm_kind, pad_token_id=cfg.score_pad_token_id, progress=False)
    verified = verify_rows(rows.reset_index(drop=True), cfg.score_code_timeout_s, cfg.score_code_workers,
                           progress=False)
    out[VERIFY_COLUMNS] = verified[VERIFY_COLUMNS]
    return out


def load_inputs(cfg: ScoreConfig) -> pd.DataFrame:
    """02's responses joined with 01's prompts, in responses.parquet's order: what the blocks are cut from."""
    run_dir = cfg.step_dir.parent
    paths = {"prompts": run_dir / "01_prompts" / "prompts.parquet",
             "responses": run_dir / "02_sampling" / "responses.parquet"}
    for name, path in paths.items():
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found; run the step that writes {name} first")
    return join_prompts(pd.read_parquet(paths["responses"]), pd.read_parquet(paths["prompts"]),
                        str(paths["responses"]))


def block_owners(df: pd.DataFrame, cfg: ScoreConfig, num_shards: int) -> list[int]:
    """The shard of each block: consecutive runs of blocks, about the same number of rows per shard."""
    from fusechat_utils import shards

    starts = range(0, len(df), cfg.score_chunk_size)
    return shards.split_contiguous([min(cfg.score_chunk_size, len(df) - s) for s in starts], num_shards)


def score_blocks(cfg: ScoreConfig, df: pd.DataFrame, todo: list[int], folder_of) -> float:
    """Score, verify and commit each block of `todo` into `folder_of(k)`; seconds spent."""
    import time

    from tqdm.auto import tqdm

    from fusechat_utils import shards

    start = time.perf_counter()
    rm = load_rm(cfg) if todo else None
    for k in tqdm(todo, desc="score blocks"):
        rows = df.iloc[k * cfg.score_chunk_size : (k + 1) * cfg.score_chunk_size]
        shards.write_parquet_atomic(block_path(folder_of(k), k), score_block(cfg, rm, rows))
    return time.perf_counter() - start


def run_shard(cfg: ScoreConfig, shard_index: int, num_shards: int) -> dict[str, Any]:
    """Score this shard's blocks of the one-process run into chunks/shard-<i>-of-<N>/ (resuming committed ones)."""
    from fusechat_utils import shards

    df = load_inputs(cfg)
    folder = shards.resume_guard(shards.shard_dir(cfg.step_dir, shard_index, num_shards), resume_values(cfg, df),
                                 RESUME_FILE, inputs=RESUME_INPUTS, what="committed score blocks")
    mine = [k for k, owner in enumerate(block_owners(df, cfg, num_shards)) if owner == shard_index]
    todo = [k for k in mine if not block_path(folder, k).exists()]
    work_s = score_blocks(cfg, df, todo, lambda k: folder)
    return {"shard": f"{shard_index}/{num_shards}", "blocks": len(mine), "resumed_blocks": len(mine) - len(todo),
            "work_seconds": round(work_s, 1)}


def array_folders(cfg: ScoreConfig, df: pd.DataFrame, num_shards: int) -> list:
    """The shard folder of each block, once every shard has finished with this run's values and inputs."""
    from fusechat_utils import shards

    shards.require_finished(cfg.step_dir, num_shards)
    folders = [shards.shard_dir(cfg.step_dir, i, num_shards) for i in range(num_shards)]
    values = resume_values(cfg, df)
    for folder in folders:
        shards.check_shard_values(folder, values, RESUME_FILE)
    return [folders[owner] for owner in block_owners(df, cfg, num_shards)]


def run(cfg: ScoreConfig) -> dict[str, Any]:
    """Read 01's prompts and 02's responses; write scored.parquet and summary.csv into the step folder.

    Scores block by block (`score_chunk_size` rows), committing each; blocks already committed are read back.
    Over the finished shards of a job array (`fusechat run --shard i/N`) it scores nothing: their blocks are
    the one-process run's, read from chunks/shard-<i>-of-<N>/.
    """
    from fusechat_utils import shards
    from fusechat_utils.io import atomic_path, write_parquet

    df = load_inputs(cfg)
    starts = range(0, len(df), cfg.score_chunk_size)
    array = shards.shard_count(cfg.step_dir)
    if array:
        folders, todo = array_folders(cfg, df, array), []
    else:
        chunk_dir = shards.resume_guard(cfg.step_dir / CHUNKS, resume_values(cfg, df), RESUME_FILE,
                                        inputs=RESUME_INPUTS, what="committed score blocks")
        folders = [chunk_dir] * len(starts)
        todo = [k for k, _ in enumerate(starts) if not block_path(chunk_dir, k).exists()]
    work_s = score_blocks(cfg, df, todo, lambda k: folders[k])
    # Every run, interrupted or not, assembles scored.parquet from the committed files: one path, one result.
    blocks = [read_block(block_path(folders[k], k), df.iloc[s : s + cfg.score_chunk_size])
              for k, s in enumerate(starts)]
    scores = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=KEY + ["rm_score"] + VERIFY_COLUMNS)
    df["rm_score"] = scores["rm_score"].astype(float).to_numpy()
    for col in VERIFY_COLUMNS:
        df[col] = pd.Series(scores[col].to_numpy(), index=df.index, dtype=object).where(scores[col].notna().to_numpy(),
                                                                                          None)
    summary = summary_table(df)
    write_parquet(cfg.step_dir / "scored.parquet", df)
    with atomic_path(cfg.step_dir / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    return {"scored": df, "summary": summary, "n_responses": len(df), "blocks": len(starts),
            "resumed_blocks": len(starts) - len(todo), "work_seconds": round(work_s, 1), "shards": array or 1,
            "path": cfg.step_dir / "scored.parquet"}
