"""LLM-as-judge through any OpenAI-compatible endpoint (`eval_judge_base_url`, e.g. a local vLLM server).

The client (`JudgeClient`) is the `openai` client with an explicit retry policy (its own exponential backoff on
408/409/429/5xx, timeouts and dropped connections, `max_retries` times), bounded concurrency (a thread pool of
`concurrency` requests in flight) and an on-disk cache: one JSON line per completed request, keyed by the sha256 of
(model, messages, sampling params), appended with a single O_APPEND write so concurrent writers never interleave
lines and a killed run loses at most the line being written (a torn last line is skipped on read). A re-run with the
same judge, prompts and params reads every verdict back and makes no judge call. The key comes from the environment
(`OPENAI_API_KEY`; any value for a local server).

MT-Bench / AlignBench: single-answer grading, verdict "[[rating]]" (FastChat `single-v1` / AlignBench prompt
shape). Arena-Hard: `judge_arena` plays arena-hard-auto v0.1's two games per question (game 1: A = baseline,
B = model; game 2: positions swapped) with its system prompt, temperature 0, 4096 tokens, verdict regex
`\\[\\[([AB<>=]+)\\]\\]` and a second attempt ("continue your judgment...") when no verdict parses; the score is the
Bradley-Terry bootstrap of `winrate.arena_hard_score`. `judge_pairwise` is the older single-game shape.
Usage: `client = JudgeClient(base_url, model, cache_path=step_dir / "judge_cache.jsonl")`;
`judge_single(client, None, items, answers)`; `judge_arena(client, items, answers, baselines)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fusechat_utils.errors import UserError

SINGLE = ("[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an "
          "AI assistant to the user question displayed below. {ref_note}Be as objective as possible. After providing "
          "your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "
          "\"[[rating]]\", for example: \"Rating: [[5]]\".\n\n[Question]\n{question}\n\n{reference}"
          "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]")
PAIRWISE = ("Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
            "to the user prompt displayed below. After your evaluation, output your final verdict with a label: "
            "[[A>>B]], [[A>B]], [[A=B]], [[B>A]] or [[B>>A]].\n\n<|User Prompt|>\n{question}\n\n"
            "<|The Start of Assistant A's Answer|>\n{answer_a}\n<|The End of Assistant A's Answer|>\n\n"
            "<|The Start of Assistant B's Answer|>\n{answer_b}\n<|The End of Assistant B's Answer|>")
# arena-hard-auto v0.1 config/judge_config.yaml (FuseEval's copy differs only in model_list)
ARENA_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the "
    "user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to "
    "evaluate which assistant's answer is better.\n\nBegin your evaluation by generating your own answer to the "
    "prompt. You must provide your answers before judging any answers.\n\nWhen evaluating the assistants' answers, "
    "compare both assistants' answers with your answer. You must identify and correct any mistakes or inaccurate "
    "information.\n\nThen consider if the assistant's answers are helpful, relevant, and concise. Helpful means the "
    "answer correctly responds to the prompt or follows the instructions. Note when user prompt has any ambiguity or "
    "more than one interpretation, it is more helpful and appropriate to ask for clarifications or more information "
    "from the user than providing an answer based on assumptions. Relevant means all parts of the response closely "
    "connect or are appropriate to what is being asked. Concise means the response is clear and not verbose or "
    "excessive.\n\nThen consider the creativity and novelty of the assistant's answers when needed. Finally, "
    "identify any missing important information in the assistants' answers that would be beneficial to include when "
    "responding to the user prompt.\n\nAfter providing your explanation, you must output only one of the following "
    "choices as your final verdict with a label:\n\n1. Assistant A is significantly better: [[A>>B]]\n2. Assistant A "
    "is slightly better: [[A>B]]\n3. Tie, relatively the same: [[A=B]]\n4. Assistant B is slightly better: "
    "[[B>A]]\n5. Assistant B is significantly better: [[B>>A]]\n\nExample output: \"My final verdict is tie: "
    "[[A=B]]\".")
ARENA_USER = ("<|User Prompt|>\n{question}\n\n<|The Start of Assistant A's Answer|>\n{answer_a}\n"
              "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n{answer_b}\n"
              "<|The End of Assistant B's Answer|>")
ARENA_CONTINUE = "continue your judgment and finish by outputting a final verdict label"
ARENA_ATTEMPTS = 2  # number_of_judgment_attempts
ARENA_PARAMS = {"temperature": 0.0, "max_tokens": 4096}
ARENA_SCORE = {"A>>B": 0.0, "A>B": 0.0, "A=B": 0.5, "B>A": 1.0, "B>>A": 1.0}  # the model is assistant B
VERDICT = re.compile(r"\[\[([AB<>=]+)\]\]")


class JudgeError(UserError):
    """The judge endpoint failed after every retry (unreachable, bad key, unknown model, persistent 5xx)."""


class JudgeCache:
    """Append-only JSONL of {"key", "model", "params", "content"}; thread- and process-safe appends."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._entries[entry["key"]] = entry["content"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line from a killed writer: that request is simply asked again

    def get(self, key: str) -> str | None:
        return self._entries.get(key)

    def put(self, key: str, model: str, params: dict, content: str) -> None:
        line = (json.dumps({"key": key, "model": model, "params": params, "content": content}, ensure_ascii=False)
                + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)  # one write of the whole line: appends never interleave
            finally:
                os.close(fd)
            self._entries[key] = content

    def __len__(self) -> int:
        return len(self._entries)


def cache_key(model: str, messages: list[dict], params: dict) -> str:
    blob = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeClient:
    """`complete(list of message lists) -> list of texts`, concurrent, retried, cached.

    `calls` counts requests that reached the server through this client (retries included by the server, not here),
    `hits` the answers read from the cache.
    """

    def __init__(self, base_url: str, model: str, cache_path: str | Path | None = None, concurrency: int = 8,
                 max_retries: int = 6, timeout_s: float = 600.0, api_key_env: str = "OPENAI_API_KEY"):
        from openai import OpenAI

        self.model = model
        self.concurrency = max(1, int(concurrency))
        self.cache = JudgeCache(cache_path) if cache_path else None
        self.client = OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "EMPTY",
                             max_retries=max_retries, timeout=timeout_s)
        self.calls = 0
        self.hits = 0
        self._count = threading.Lock()

    def _one(self, messages: list[dict], params: dict) -> str:
        key = cache_key(self.model, messages, params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            with self._count:
                self.hits += 1
            return hit
        import openai

        with self._count:
            self.calls += 1
        try:
            response = self.client.chat.completions.create(model=self.model, messages=messages, **params)
        except openai.APIError as err:
            raise JudgeError(f"judge {self.model!r} at {self.client.base_url}: {type(err).__name__}: {err} (after "
                             f"{self.client.max_retries} retries; verdicts received so far are cached"
                             f"{f' in {self.cache.path}' if self.cache else ''}, a re-run asks only the rest)") from err
        content = response.choices[0].message.content or ""
        if self.cache is not None:
            self.cache.put(key, self.model, params, content)
        return content

    def complete(self, conversations: list[list[dict]], temperature: float = 0.0, max_tokens: int = 2048,
                 **extra) -> list[str]:
        params = {"temperature": float(temperature), "max_tokens": int(max_tokens), **extra}
        if not conversations:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(lambda m: self._one(m, params), conversations))


def client_for(cfg) -> JudgeClient:
    """The run's judge: its endpoint and model, the cache in `<step_dir>/judge_cache.jsonl` (outside parts/, so a
    rerun that re-evaluates a stage still finds every verdict), and optional `eval_judge_concurrency` /
    `eval_judge_max_retries` / `eval_judge_cache` params where the config has them."""
    cache = getattr(cfg, "eval_judge_cache", None) or Path(cfg.step_dir) / "judge_cache.jsonl"
    return JudgeClient(cfg.eval_judge_base_url, cfg.eval_judge_model, cache_path=cache,
                       concurrency=getattr(cfg, "eval_judge_concurrency", 8),
                       max_retries=getattr(cfg, "eval_judge_max_retries", 6))


def _client(judge: JudgeClient | str, model: str | None) -> JudgeClient:
    if isinstance(judge, JudgeClient):
        return judge
    if not model:
        raise ValueError("a judge base_url needs the judge model name")
    return JudgeClient(judge, model)  # no cache: a bare URL is a one-off


def chat(base_url: str, model: str, prompt: str, max_tokens: int = 1024, timeout_s: float = 120.0) -> str:
    """One greedy chat completion (uncached)."""
    return JudgeClient(base_url, model, timeout_s=timeout_s).complete(
        [[{"role": "user", "content": prompt}]], max_tokens=max_tokens)[0]


def single_prompt(item: dict, answer: str) -> str:
    ref = item.get("reference")
    return SINGLE.format(
        question=item["prompt"], answer=answer,
        ref_note="Compare the response with the reference answer. " if ref else "",
        reference=f"[The Start of Reference Answer]\n{ref}\n[The End of Reference Answer]\n\n" if ref else "")


def pairwise_prompt(item: dict, answer: str, baseline: str) -> str:
    return PAIRWISE.format(question=item["prompt"], answer_a=baseline, answer_b=answer)


def parse_rating(text: str) -> float | None:
    """'[[7]]' or '[[7.5]]' -> 7.0 / 7.5; None when the judge gave no rating (FastChat records -1)."""
    match = re.search(r"\[\[(\d+\.?\d*)\]\]", text or "") or re.search(r"\[(\d+\.?\d*)\]", text or "")
    return float(match.group(1)) if match else None


def arena_verdict(text: str) -> tuple[str | None, bool]:
    """(verdict label, try again) as arena-hard's get_score: no label -> (None, True); one distinct label ->
    (label, False); conflicting labels -> (None, False)."""
    found = {m.strip("\n") for m in VERDICT.findall(text or "") if m}
    if not found:
        return None, True
    return (found.pop(), False) if len(found) == 1 else (None, False)


def arena_outcome(text: str) -> float | None:
    """1 = model (B) wins, 0.5 tie, 0 = baseline wins; None when no single verdict is found."""
    verdict, _ = arena_verdict(text)
    return ARENA_SCORE.get(verdict) if verdict else None


def judge_single(judge: JudgeClient | str, model: str | None, items: list[dict], answers: list[str],
                 max_tokens: int = 2048) -> list[dict]:
    """Single-answer grading, temperature 0 (FastChat's judge call: max_tokens 2048)."""
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} items but {len(answers)} answers")
    client = _client(judge, model)
    verdicts = client.complete([[{"role": "user", "content": single_prompt(it, a)}] for it, a in zip(items, answers)],
                               max_tokens=max_tokens)
    return [{"id": it["id"], "answer": a, "judgment": v, "score": parse_rating(v)}
            for it, a, v in zip(items, answers, verdicts)]


def judge_pairwise(judge: JudgeClient | str, model: str | None, items: list[dict], answers: list[str],
                   baselines: list[str], max_tokens: int = 2048) -> list[dict]:
    """One game per item (A = baseline, B = model); see `judge_arena` for arena-hard's two games."""
    if not len(items) == len(answers) == len(baselines):
        raise ValueError("items, answers and baselines differ in length")
    client = _client(judge, model)
    verdicts = client.complete([[{"role": "user", "content": pairwise_prompt(it, a, b)}]
                                for it, a, b in zip(items, answers, baselines)], max_tokens=max_tokens)
    return [{"id": it["id"], "answer": a, "judgment": v, "outcome": arena_outcome(v)}
            for it, a, v in zip(items, answers, verdicts)]


def arena_messages(question: str, answer_a: str, answer_b: str) -> list[dict]:
    return [{"role": "system", "content": ARENA_SYSTEM},
            {"role": "user", "content": ARENA_USER.format(question=question, answer_a=answer_a, answer_b=answer_b)}]


def judge_arena(judge: JudgeClient | str, model: str | None, items: list[dict], answers: list[str],
                baselines: list[str]) -> list[dict]:
    """arena-hard-auto v0.1 judgment: per item two games, game 1 (A = baseline, B = model) and game 2 (A = model,
    B = baseline), each up to ARENA_ATTEMPTS calls. Rows: {"id", "answer", "games": [{"score": label or None,
    "judgment": text}, ...]} in arena-hard's order, ready for `winrate.arena_battles`."""
    if not len(items) == len(answers) == len(baselines):
        raise ValueError("items, answers and baselines differ in length")
    client = _client(judge, model)
    convs = []
    for it, ans, base in zip(items, answers, baselines):
        convs += [arena_messages(it["prompt"], base, ans), arena_messages(it["prompt"], ans, base)]
    texts: list[list[str]] = [[] for _ in convs]
    todo = list(range(len(convs)))
    for _attempt in range(ARENA_ATTEMPTS):
        if not todo:
            break
        outs = client.complete([convs[i] for i in todo], **ARENA_PARAMS)
        again = []
        for i, text in zip(todo, outs):
            texts[i].append(text)
            if arena_verdict(text)[1]:
                convs[i] = convs[i] + [{"role": "assistant", "content": text},
                                       {"role": "user", "content": ARENA_CONTINUE}]
                again.append(i)
        todo = again
    rows = []
    for k, (it, ans) in enumerate(zip(items, answers)):
        games = []
        for i in (2 * k, 2 * k + 1):
            label = None
            for text in texts[i]:
                label, retry = arena_verdict(text)
                if not retry:
                    break
            games.append({"score": label, "judgment": "\n\n".join(texts[i])})
        rows.append({"id": it["id"], "answer": ans, "games": games})
    return rows
