"""Arena-Hard v0.1 as FuseEval runs it: generation with its AlpacaEval-style prompt templates (greedy, 4096 tokens),
then arena-hard-auto's pairwise judgment against gpt-4-0314's answers and the Bradley-Terry score with its bootstrap
95% interval.

Generation (FuseEval `IF-Eval/Arena-Hard/generate.sh`): `alpaca_eval evaluate_from_model` over
`arena-hard-gpt-4-0314.json` with `configs/{llama3,qwen_25,gemma2}.txt` (byte-identical to AlpacaEval-2's, so the
templates come from `alpaca_eval_run`) and `configs/*-arenahard.yaml` (temperature 0, top_p 1, 4096 new tokens,
vLLM max_model_len 4096); outputs are stripped; `trans_alpaca_to_arena.py` then files them by question id.
Judging: `judge_arena` (two games per question, game 2 with the positions swapped, a second attempt asking to
"continue your judgment..." when no verdict parses) through a `judge.JudgeClient`. Every judge setting (system
prompt, prompt template, verdict regex, temperature, max_tokens, number of attempts) is read from the real
`legacy_format/judge_config.yaml` at run time (`judge_settings`): the YAML is the one source of truth, and a YAML
asking for what the kit does not implement (pairwise False, no baseline, reference answers) is refused before any
judge call. Only the "continue your judgment..." turn (`CONTINUE`) is a constant: arena-hard-auto hard-codes it
in gen_judgment.py.
Score: `winrate.arena_hard_score` (show_result.py's method: strong verdicts weigh 3, 100 bootstrap rounds).

Differs from FuseEval: a judge call that keeps failing raises `JudgeError` (judgments so far stay cached) where
arena-hard-auto records "$ERROR$" and retries the verdict parse; `decoding` gives int stop_token_ids where the YAML
has strings that never match (see alpaca_eval_run). `build_prompt` returns FuseEval's text; vLLM adds the
tokenizer's BOS when it encodes it (see alpaca_eval_run's note (2)).
Hand-written: arena-hard-auto is not a package; the loader, the settings reader and the judgment loop are
small.
Usage: `items = load(path)`; `texts = [build_prompt(it, "qwen25") for it in items]`; generate with
`decoding("qwen25")`; `rows = judge_answers(client, items, outputs)` (or `judge_arena(client, items, answers,
baselines, judge_settings(path))`); `score(rows)`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import alpaca_eval_run, judge, winrate

DATA = Path(__file__).resolve().parents[2] / "data" / "benchmarks" / "arena_hard_v0.1"
QUESTIONS = DATA / "legacy_format" / "question.jsonl"  # the file FuseEval ships
BASELINES = DATA / "legacy_format" / "arena-hard-gpt-4-0314.json"  # FuseEval's Arena-Hard/data copy
JUDGE_CONFIG = DATA / "legacy_format" / "judge_config.yaml"
# FuseEval configs/{llama-3,qwen25,gemma-2}-arenahard.yaml: the same for every family except the stops
GREEDY = {"temperature": 0.0, "top_p": 1.0}


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise UserError(f"{path}: row {n}: not valid JSON ({err})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {n}: expected a JSON object")
        rows.append((n, row))
    return rows


def _string(path, n: int, row: dict, name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise UserError(f"{path}: row {n}: field {name!r} must be a string, got {value!r:.80}")
    return value


def _question(path: Path, n: int, row: dict) -> tuple[str, str]:
    """(id, prompt) from a legacy row {question_id, turns: [{content}]} or a current one {uid, prompt}."""
    if "uid" in row:
        return _string(path, n, row, "uid"), _string(path, n, row, "prompt")
    turns = row.get("turns")
    if not (isinstance(turns, list) and len(turns) == 1 and isinstance(turns[0], dict)
            and isinstance(turns[0].get("content"), str)):
        raise UserError(f"{path}: row {n}: field 'turns' must be one turn {{'content': str}}, got {turns!r:.80}")
    return _string(path, n, row, "question_id"), turns[0]["content"]


def load_baselines(path: str | Path = BASELINES) -> dict[str, str]:
    """AlpacaEval-format baseline answers (a JSON list of {instruction, output, ...}) -> instruction -> output."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a JSON list of {{instruction, output}} rows")
    out: dict[str, str] = {}
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {n}: expected a JSON object")
        instruction, output = _string(path, n, row, "instruction"), _string(path, n, row, "output")
        if out.get(instruction, output) != output:
            raise UserError(f"{path}: row {n}: a second, different answer to the same instruction")
        out[instruction] = output
    return out


def load(path: str | Path = QUESTIONS, baselines: str | Path = BASELINES) -> list[dict]:
    """Arena-Hard questions (legacy or current format) joined by text to the baseline answers -> items {id, prompt,
    category, cluster, baseline}. A question without a baseline answer is an error."""
    path = Path(path)
    answers = load_baselines(baselines)
    items, ids = [], set()
    for n, row in _read_jsonl(path):
        qid, prompt = _question(path, n, row)
        if qid in ids:
            raise UserError(f"{path}: row {n}: question id {qid!r} repeats")
        ids.add(qid)
        if prompt not in answers:
            raise UserError(f"{path}: row {n}: question {qid!r} has no baseline answer in {baselines} (joined on "
                            f"the question text)")
        items.append({"id": qid, "prompt": prompt, "category": row.get("category"), "cluster": row.get("cluster"),
                      "baseline": answers[prompt]})
    return items


def build_prompt(item: dict, family: str, tokenizer=None) -> str:
    """FuseEval's prompt text (the AlpacaEval templates, question as the instruction)."""
    return alpaca_eval_run.fill_template(family, item["prompt"], tokenizer)


def decoding(family: str) -> dict:
    """FuseEval's arenahard YAML: greedy, 4096 new tokens, the family's stops, vLLM max_model_len 4096."""
    base = alpaca_eval_run.decoding(family)
    return {**GREEDY, "max_tokens": base["max_tokens"], "stop": base["stop"],
            "stop_token_ids": base["stop_token_ids"], "n": 1, "max_model_len": base["max_model_len"]}


# arena-hard-auto v0.1 gen_judgment.py `judgment()`: the user turn appended when a judgment holds no verdict. It is
# hard-coded there, not a setting of judge_config.yaml.
CONTINUE = "continue your judgment and finish by outputting a final verdict label"
_TEMPLATE_FIELDS = ("question_1", "answer_1", "answer_2")


def judge_settings(path: str | Path = JUDGE_CONFIG) -> dict:
    """arena-hard-auto's legacy judge_config.yaml -> the settings `judge_arena` uses: system_prompt,
    prompt_template (one template with question_1 / answer_1 / answer_2), regex_pattern (one capture group),
    temperature, max_tokens, number_of_judgment_attempts, plus judge_model / baseline_model as recorded. A YAML
    asking for what the kit does not implement (pairwise False, no baseline, reference answers, several templates)
    is refused."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: not a readable YAML file ({err})") from None
    keys = ("judge_model", "baseline_model", "pairwise", "temperature", "max_tokens", "regex_pattern",
            "number_of_judgment_attempts", "system_prompt", "prompt_template")
    missing = [k for k in keys if not isinstance(raw, dict) or k not in raw]
    if missing:
        raise UserError(f"{path}: missing {', '.join(missing)}")
    settings = {k: raw[k] for k in keys} | {"reference": raw.get("reference"), "baseline": raw.get("baseline")}
    problems = []
    if settings["pairwise"] is not True:
        problems.append(f"pairwise {settings['pairwise']!r} (only pairwise: True, both games, is implemented)")
    if settings["baseline"] is not True:
        problems.append(f"baseline {settings['baseline']!r} (only judging against baseline_model is implemented)")
    if settings["reference"]:
        problems.append(f"reference {settings['reference']!r} (reference answers are not implemented)")
    if not isinstance(settings["system_prompt"], str):
        problems.append("system_prompt is not a string")
    templates = settings["prompt_template"]
    if not (isinstance(templates, list) and len(templates) == 1 and isinstance(templates[0], str)):
        problems.append(f"prompt_template must be a list of one string (a single-turn question), got "
                        f"{templates!r:.80}")
    else:
        try:
            templates[0].format(**{f: "" for f in _TEMPLATE_FIELDS})
        except (KeyError, IndexError, ValueError) as err:
            problems.append(f"prompt_template[0] does not format with only {', '.join(_TEMPLATE_FIELDS)} "
                            f"({type(err).__name__}: {err})")
    try:
        pattern = re.compile(settings["regex_pattern"])
        if pattern.groups != 1:
            problems.append(f"regex_pattern {settings['regex_pattern']!r} needs exactly one capture group "
                            f"(the verdict label)")
    except (re.error, TypeError) as err:
        problems.append(f"regex_pattern {settings['regex_pattern']!r} is not a regular expression ({err})")
    for name, kind, least in (("temperature", (int, float), 0), ("max_tokens", int, 1),
                              ("number_of_judgment_attempts", int, 1)):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, kind) or value < least:
            problems.append(f"{name} {value!r} (expected a number >= {least})")
    if problems:
        raise UserError(f"{path}: {'; '.join(problems)}")
    return settings


def arena_messages(question: str, answer_a: str, answer_b: str, settings: dict) -> list[dict]:
    """One game's opening conversation: the YAML's system prompt, then its prompt_template[0] with question_1 =
    the question, answer_1 = assistant A's answer, answer_2 = assistant B's."""
    user = settings["prompt_template"][0].format(question_1=question, answer_1=answer_a, answer_2=answer_b)
    return [{"role": "system", "content": settings["system_prompt"]}, {"role": "user", "content": user}]


def arena_verdict(text: str, settings: dict) -> tuple[str | None, bool]:
    """(verdict label, try again) as arena-hard's get_score with the YAML's regex_pattern: no label -> (None, True);
    one distinct label -> (label, False); conflicting labels -> (None, False)."""
    found = {m.strip("\n") for m in re.findall(settings["regex_pattern"], text or "") if m}
    if not found:
        return None, True
    return (found.pop(), False) if len(found) == 1 else (None, False)


def judge_arena(client: judge.JudgeClient, items: list[dict], answers: list[str], baselines: list[str],
                settings: dict) -> list[dict]:
    """arena-hard-auto v0.1 judgment with `settings` (from `judge_settings`): per item two games, game 1 (A =
    baseline, B = model) and game 2 (A = model, B = baseline), each up to number_of_judgment_attempts calls at the
    YAML's temperature and max_tokens, a CONTINUE turn before each further attempt. Rows: {"id", "answer", "games":
    [{"score": label or None, "judgment": text}, ...]} in arena-hard's order, ready for `winrate.arena_battles`."""
    if not len(items) == len(answers) == len(baselines):
        raise ValueError("items, answers and baselines differ in length")
    params = {"temperature": float(settings["temperature"]), "max_tokens": int(settings["max_tokens"])}
    convs = []
    for it, ans, base in zip(items, answers, baselines):
        convs += [arena_messages(it["prompt"], base, ans, settings), arena_messages(it["prompt"], ans, base, settings)]
    texts: list[list[str]] = [[] for _ in convs]
    todo = list(range(len(convs)))
    for _attempt in range(int(settings["number_of_judgment_attempts"])):
        if not todo:
            break
        outs = client.complete([convs[i] for i in todo], **params)
        again = []
        for i, text in zip(todo, outs):
            texts[i].append(text)
            if arena_verdict(text, settings)[1]:
                convs[i] = convs[i] + [{"role": "assistant", "content": text}, {"role": "user", "content": CONTINUE}]
                again.append(i)
        todo = again
    rows = []
    for k, (it, ans) in enumerate(zip(items, answers)):
        games = []
        for i in (2 * k, 2 * k + 1):
            label = None
            for text in texts[i]:
                label, retry = arena_verdict(text, settings)
                if not retry:
                    break
            games.append({"score": label, "judgment": "\n\n".join(texts[i])})
        rows.append({"id": it["id"], "answer": ans, "games": games})
    return rows


def judge_answers(client: judge.JudgeClient, items: list[dict], answers: list[str],
                  config: str | Path = JUDGE_CONFIG) -> list[dict]:
    """Both games per item with the settings of `config`, the model's answer stripped as FuseEval's generation
    leaves it. Rows as `judge_arena` returns them ({"id", "answer", "games": [{"score", "judgment"}, ...]})."""
    settings = judge_settings(config)
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} items but {len(answers)} answers")
    return judge_arena(client, items, [alpaca_eval_run.postprocess(a) for a in answers],
                       [it["baseline"] for it in items], settings)


def score(judgments: list[dict], rounds: int = 100, seed: int = 42) -> dict:
    """Bradley-Terry win rate against the baseline, percent, with its 95% bootstrap interval (lower, upper)."""
    return winrate.arena_hard_score(judgments, rounds=rounds, seed=seed)


def result_rows(model: str, stage: str, judgments: list[dict], rounds: int = 100, seed: int = 42) -> list[dict]:
    """results.csv rows: the score and the two ends of its interval."""
    return winrate.arena_hard_rows(model, stage, judgments, rounds, seed)


def evaluate(items: list[dict], generate, family: str, tokenizer, client: judge.JudgeClient, model: str, stage: str,
             step_dir: str | Path | None = None, options: dict | None = None):
    """Generate (FuseEval's arenahard settings), judge both games, score: (results.csv rows, {name: samples})."""
    answers = generate([build_prompt(it, family, tokenizer) for it in items], decoding(family))
    judgments = judge_answers(client, items, answers)
    samples = [{"id": it["id"], "prompt": it["prompt"], "category": it["category"], "response": a, **j}
               for it, a, j in zip(items, answers, judgments)]
    return result_rows(model, stage, judgments), {"Arena-Hard (WR %)": samples}
