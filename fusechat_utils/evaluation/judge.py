"""LLM-as-judge through any OpenAI-compatible endpoint (`eval_judge_base_url`, e.g. a local vLLM server).

The client (`JudgeClient`) is the `openai` client with an explicit retry policy (its own exponential backoff on
408/409/429/5xx, timeouts and dropped connections, `max_retries` times), bounded concurrency (a thread pool of
`concurrency` requests in flight) and an on-disk cache: one JSON line per completed request, keyed by the sha256 of
(model, messages, sampling params), appended with a single O_APPEND write so concurrent writers never interleave
lines and a killed run loses at most the line being written (a torn last line is skipped on read). A re-run with the
same judge, prompts and params reads every verdict back and makes no judge call. The key comes from the environment
(`OPENAI_API_KEY`; any value for a local server).

The prompts, sampling and verdict parsing belong to each benchmark: `mt_bench` (FastChat's single-answer
grading), `alignbench` (AlignBench's judge.py) and `arena_hard` (arena-hard-auto's pairwise games, its settings read
from its judge_config.yaml); AlpacaEval is judged by the `alpaca_eval` package itself (`alpaca_eval_run`), which
raises `JudgeError` too.
Usage: `client = JudgeClient(base_url, model, cache_path=step_dir / "judge_cache.jsonl")` (or `client_for(cfg,
benchmark)`); `texts = client.complete([messages, ...], temperature=0.0, max_tokens=2048)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fusechat_utils.errors import UserError


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

    def complete(self, conversations: list[list[dict]], temperature: float = 0.0, max_tokens: int | None = 2048,
                 **extra) -> list[str]:
        """max_tokens None sends none (the server's default), as AlignBench's judge call does."""
        params = {"temperature": float(temperature), **extra}
        if max_tokens is not None:
            params["max_tokens"] = int(max_tokens)
        if not conversations:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(lambda m: self._one(m, params), conversations))


def client_for(cfg, benchmark: str) -> JudgeClient:
    """A benchmark's judge: the endpoint, the benchmark's judge model (`eval_judge_models`), the cache in
    `<step_dir>/judge_cache.jsonl` (outside parts/, so a rerun that re-evaluates a stage still finds every verdict),
    and optional `eval_judge_concurrency` / `eval_judge_max_retries` / `eval_judge_cache` params where the config has
    them."""
    cache = getattr(cfg, "eval_judge_cache", None) or Path(cfg.step_dir) / "judge_cache.jsonl"
    if benchmark not in cfg.eval_judge_models:
        raise UserError(f"eval_judge_models has no judge for {benchmark!r}; it has {sorted(cfg.eval_judge_models)}")
    return JudgeClient(cfg.eval_judge_base_url, cfg.eval_judge_models[benchmark], cache_path=cache,
                       concurrency=getattr(cfg, "eval_judge_concurrency", 8),
                       max_retries=getattr(cfg, "eval_judge_max_retries", 6))

