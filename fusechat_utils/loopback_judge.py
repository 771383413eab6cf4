"""An OpenAI-compatible judge on 127.0.0.1 for rehearsals and tests: /v1/chat/completions on a free port, for as
long as a `with` block runs. Hand-written on http.server: the point is a real HTTP round trip through the `openai`
client (retries, timeouts, logprobs) with no model behind it, which no library offers offline.

By default every judged benchmark gets a reply in its verdict format (MT-Bench `[[r]]`, Arena-Hard `[[A>B]]`,
AlignBench's score dict, AlpacaEval's one-token m/M with top logprobs), a deterministic function of the request,
so a judge cache replays a rerun. Tests pass their own `reply(body)` (content, or (content, logprobs)), or
subclass and override `respond` to answer with errors.

Usage: `with LoopbackJudge() as judge: client(judge.url)...; judge.requests` (the request bodies, in order).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verdict(messages: list[dict]) -> str:
    """One reply every judged pipeline parses, varying with the request: an MT-Bench rating, an Arena-Hard verdict
    and AlignBench's score dict (its dimensions are read from the dict, the overall score from '综合得分')."""
    digest = int(hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest(), 16)
    rating, games = 1 + digest % 10, ("A>B", "A=B", "B>A", "A>>B", "B>>A")
    return (f"Stand-in judgment. My final verdict is [[{games[digest % 5]}]]. Rating: [[{rating}]]\n"
            f"{{'事实正确性': {rating}, '满足用户需求': {rating}, '综合得分': {rating}}}")


def one_token_logprobs(p_first: float, tokens: tuple[str, str] = ("m", "M")) -> tuple[str, dict]:
    """A one-token answer with its top logprobs, as AlpacaEval's weighted annotator asks for: the likelier token
    and {"content": [...]} in the OpenAI format."""
    top = sorted(((t, q) for t, q in zip(tokens, (p_first, 1 - p_first), strict=True)), key=lambda x: -x[1])
    top = [{"token": t, "logprob": math.log(q), "bytes": list(t.encode())} for t, q in top]
    return top[0]["token"], {"content": [{**top[0], "top_logprobs": top}]}


def stand_in_reply(body: dict) -> tuple[str, dict | None]:
    """The default: logprobs requests (AlpacaEval) get m/M, everyone else `verdict`."""
    messages = body.get("messages", [])
    if body.get("logprobs"):
        return one_token_logprobs(0.2 + 0.6 * (int(hashlib.sha256(json.dumps(messages).encode()).hexdigest(), 16)
                                               % 100) / 100)
    return verdict(messages), None


def chat_completion(body: dict, content: str, logprobs: dict | None = None) -> dict:
    return {"id": "loopback", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class LoopbackJudge:
    """The server. `reply(body)` -> content or (content, logprobs); `respond` may be overridden to return any
    (status, json, headers), with `record` and `answered` as its parts. `requests` holds every request body, `calls` their number."""

    def __init__(self, reply=stand_in_reply):
        self.reply = reply
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload, headers = judge.respond(body, self.path, self.headers)
                out = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout) and retries

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    @property
    def calls(self) -> int:
        return len(self.requests)

    def respond(self, body: dict, path: str, headers) -> tuple[int, dict, dict]:
        """(status, json, headers) for one request; the default records it and answers with `reply`."""
        self.record(body)
        return self.answered(body)

    def record(self, body: dict) -> None:
        with self.lock:
            self.requests.append(body)

    def answered(self, body: dict) -> tuple[int, dict, dict]:
        out = self.reply(body)
        content, logprobs = out if isinstance(out, tuple) else (out, None)
        return 200, chat_completion(body, content, logprobs), {}

    def __enter__(self) -> LoopbackJudge:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
