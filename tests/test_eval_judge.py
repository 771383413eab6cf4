"""The judge client against a real OpenAI-compatible HTTP server on loopback: concurrency, retries on 500 / 429 /
timeouts, the on-disk cache (a re-run makes no judge call), arena-hard's two games and second attempt (settings from
its judge_config.yaml); and the Arena-Hard Bradley-Terry score with its bootstrap interval on synthetic verdict
sets."""

import json
import re
import time

import pytest

from fusechat_utils.evaluation import arena_hard, judge, mt_bench, winrate
from fusechat_utils.loopback_judge import LoopbackJudge


class Server(LoopbackJudge):
    """/v1/chat/completions. Counts every request that reaches it and the most in flight at once. A prompt holding
    FAIL500 / FAIL429 / SLOW gets a 500 / a 429 / a reply slower than the client's timeout the first time it is seen,
    then a normal reply. Single grading (`_grade`'s prompt): 9 if the answer mentions Hawaii, else 3. Arena: the
    longer answer wins (>> when twice as long); NOVERDICT in the prompt gives no verdict until the judge is asked to
    continue."""

    def __init__(self):
        super().__init__(reply=self.answer)
        self.per_prompt: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def respond(self, body, path, headers):
        assert path == "/v1/chat/completions", path
        assert headers["Authorization"] == "Bearer test-key"
        self.record(body)  # every request that reaches the server counts, retried ones too
        key = json.dumps(body["messages"])
        with self.lock:
            seen = self.per_prompt.get(key, 0)
            self.per_prompt[key] = seen + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            text = " ".join(m["content"] for m in body["messages"])
            time.sleep(0.05)
            if seen == 0 and "FAIL500" in text:
                return 500, {"error": {"message": "boom", "type": "server_error"}}, {}
            if seen == 0 and "FAIL429" in text:
                return 429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"retry-after-ms": "50"}
            if seen == 0 and "SLOW" in text:
                time.sleep(2.0)
            return self.answered(body)
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def answer(body):
        msgs = body["messages"]
        last = msgs[-1]["content"]
        if msgs[0]["role"] == "system":  # arena-hard
            if last == arena_hard.CONTINUE:
                return "Continuing: my final verdict is tie: [[A=B]]"
            if "NOVERDICT" in last:
                return "Both answers have merit, and I am still thinking..."
            a, b = re.findall(r"<\|The Start of Assistant [AB]'s Answer\|>\n(.*?)\n<\|The End", last, re.DOTALL)
            if len(a) == len(b):
                return "[[A=B]]"
            strong = max(len(a), len(b)) >= 2 * min(len(a), len(b))
            return f"My final verdict: [[{'A>>B' if strong else 'A>B'}]]" if len(a) > len(b) else \
                f"My final verdict: [[{'B>>A' if strong else 'B>A'}]]"
        answer = last.split("[The Start of Assistant's Answer]")[1]
        return "Rating: [[9]]" if "Hawaii" in answer else "Rating: [[3]]"


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with Server() as s:
        yield s


def _grade(client, items, answers, max_tokens=2048):
    """Single-answer grading through the client: a prompt the fake server rates, the rating parsed as MT-Bench's."""
    convs = [[{"role": "user", "content": f"[Question]\n{it['prompt']}\n\n[The Start of Assistant's Answer]\n{a}\n"
                                          f"[The End of Assistant's Answer]"}] for it, a in zip(items, answers)]
    texts = client.complete(convs, max_tokens=max_tokens)
    return [{"id": it["id"], "judgment": t, "score": mt_bench.parse_rating(t)} for it, t in zip(items, texts)]


def _items(n):
    tags = {1: " FAIL500", 4: " FAIL429", 7: " SLOW", 9: " FAIL500"}
    return [{"id": i, "prompt": f"Question {i}{tags.get(i, '')}"} for i in range(n)]


def test_single_grading_retries_then_a_rerun_reads_every_verdict_from_the_cache(server, tmp_path):
    items = _items(12)
    answers = [("Aloha from Hawaii" if i % 2 else "Hello") for i in range(12)]
    cache = tmp_path / "07_eval" / "judge_cache.jsonl"
    first = judge.JudgeClient(server.url, "judge-m", cache_path=cache, concurrency=4, max_retries=3, timeout_s=1.0)
    rows = _grade(first, items, answers)
    assert [r["score"] for r in rows] == [9.0 if i % 2 else 3.0 for i in range(12)]
    # 12 distinct prompts: 12 answered calls; the 2 x 500, 1 x 429 and 1 timeout were each retried once
    assert first.calls == 12 and first.hits == 0
    assert server.calls == 12 + 4, server.calls
    assert 1 < server.max_in_flight <= 4
    assert len(cache.read_text().splitlines()) == 12
    print(f"\njudge calls, first run: {first.calls} (server saw {server.calls} requests incl. retries)")

    before = server.calls
    second = judge.JudgeClient(server.url, "judge-m", cache_path=cache, concurrency=4)
    again = _grade(second, items, answers)
    assert again == rows
    assert second.calls == 0 and second.hits == 12 and server.calls == before
    print(f"judge calls, second run: {second.calls} (cache hits {second.hits}, server requests "
          f"{server.calls - before})")

    # another sampling parameter or judge model is another key: asked again
    third = judge.JudgeClient(server.url, "judge-m", cache_path=cache)
    _grade(third, items[:2], answers[:2], max_tokens=100)
    other = judge.JudgeClient(server.url, "judge-other", cache_path=cache)
    _grade(other, items[:1], answers[:1])
    assert third.calls == 2 and other.calls == 1


def test_a_torn_last_cache_line_is_skipped_and_that_request_asked_again(server, tmp_path):
    cache = tmp_path / "judge_cache.jsonl"
    items, answers = _items(3)[:1] + [{"id": 5, "prompt": "Q5"}], ["Hawaii", "no"]
    _grade(judge.JudgeClient(server.url, "m", cache_path=cache), items, answers)
    lines = cache.read_text().splitlines()
    cache.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # a writer killed mid-line
    client = judge.JudgeClient(server.url, "m", cache_path=cache)
    assert [r["score"] for r in _grade(client, items, answers)] == [9.0, 3.0]
    assert client.hits == 1 and client.calls == 1


def test_an_endpoint_that_keeps_failing_is_a_judge_error_and_keeps_what_was_cached(server, tmp_path):
    cache = tmp_path / "c.jsonl"
    client = judge.JudgeClient(server.url, "m", cache_path=cache, max_retries=0)
    with pytest.raises(judge.JudgeError, match=r"judge 'm' at http://127\.0\.0\.1:\d+/v1/: InternalServerError"):
        _grade(client, [{"id": 0, "prompt": "Q"}, {"id": 1, "prompt": "Q FAIL500"}], ["a", "b"])
    assert len(cache.read_text().splitlines()) == 1  # the answered one is kept for the re-run
    dead = judge.JudgeClient("http://127.0.0.1:9/v1", "m", max_retries=0, timeout_s=2)
    with pytest.raises(judge.JudgeError, match="APIConnectionError"):
        dead.complete([[{"role": "user", "content": "x"}]])


def test_arena_two_games_second_attempt_and_bradley_terry(server, tmp_path):
    items = [{"id": i, "prompt": f"Task {i}{' NOVERDICT' if i == 2 else ''}"} for i in range(4)]
    answers = ["a much longer answer here", "short", "same", "four"]
    baselines = ["short", "a much longer answer here", "same", "five"]
    client = judge.JudgeClient(server.url, "gpt-4-1106-preview", cache_path=tmp_path / "c.jsonl", concurrency=3)
    settings = arena_hard.judge_settings()
    rows = arena_hard.judge_arena(client, items, answers, baselines, settings)
    assert [[g["score"] for g in r["games"]] for r in rows] == [
        ["B>>A", "A>>B"],  # the model is much longer: it wins both positions strongly
        ["A>>B", "B>>A"],  # the baseline is much longer
        ["A=B", "A=B"],  # no verdict, then the continue turn gives a tie
        ["A=B", "A=B"]]  # equal lengths
    assert "still thinking" in rows[2]["games"][0]["judgment"] and client.calls == 8 + 2
    assert winrate.arena_battles(rows) == ["model"] * 6 + ["baseline"] * 6 + ["tie"] * 4
    assert winrate.arena_hard_score(rows, rounds=20)["score"] == pytest.approx(50.0)
    again = judge.JudgeClient(server.url, "gpt-4-1106-preview", cache_path=tmp_path / "c.jsonl")
    assert arena_hard.judge_arena(again, items, answers, baselines, settings) == rows and again.calls == 0


def _verdicts(*groups):
    """rows from (game 1 label, game 2 label, count) groups"""
    return [{"games": [{"score": g1}, {"score": g2}]} for g1, g2, n in groups for _ in range(n)]


@pytest.mark.slow
def test_bradley_terry_all_wins_all_ties_and_a_symmetric_mix():
    wins = winrate.arena_hard_score(_verdicts(("B>A", "A>B", 50)))
    strong = winrate.arena_hard_score(_verdicts(("B>>A", "A>>B", 50)))
    ties = winrate.arena_hard_score(_verdicts(("A=B", "A=B", 50)))
    mix = winrate.arena_hard_score(_verdicts(("B>A", "A>B", 25), ("A>B", "B>A", 25)))
    losses = winrate.arena_hard_score(_verdicts(("A>>B", "B>>A", 50)))
    print(f"\nBT: all wins {wins['score']:.4f} [{wins['lower']:.4f}, {wins['upper']:.4f}]; all ties "
          f"{ties['score']:.2f}; symmetric mix {mix['score']:.2f} [{mix['lower']:.2f}, {mix['upper']:.2f}]; all "
          f"losses {losses['score']:.4f}")
    assert wins["score"] > 99.9 and strong["score"] > 99.9 and wins["lower"] > 99.9
    assert losses["score"] < 0.1
    assert ties["score"] == pytest.approx(50.0) and ties["lower"] == pytest.approx(50.0)
    assert mix["score"] == pytest.approx(50.0, abs=1e-6) and mix["lower"] < 50.0 < mix["upper"]
    assert 35 < mix["lower"] and mix["upper"] < 65
    assert wins["n_battles"] == 100 and strong["n_battles"] == 300


@pytest.mark.slow
def test_strong_verdicts_count_three_times_and_both_positions_count():
    # 10 questions: model strongly better as B in game 1 (3 battles) and slightly as A in game 2 (1): 40 model wins;
    # 20 questions: baseline slightly better in both positions: 40 baseline wins -> 50 %
    s = winrate.arena_hard_score(_verdicts(("B>>A", "A>B", 10), ("A>B", "B>A", 20)))
    assert s["score"] == pytest.approx(50.0, abs=1e-6) and s["n_battles"] == 80
    # without the weight it would be 20 / 60
    assert winrate.arena_hard_score(_verdicts(("B>>A", "A>B", 10), ("A>B", "B>A", 20)), weight=1)["score"] == \
        pytest.approx(100 * 20 / 60, abs=1e-4)
    # 30 wins, 20 losses, 10 ties (game 1 only): the two-player BT fit is the win share with ties halved
    s = winrate.arena_hard_score(_verdicts(("B>A", None, 30), ("A>B", None, 20), ("A=B", None, 10)))
    assert s["score"] == pytest.approx(100 * 35 / 60, abs=1e-4)
    # unparsed verdicts count nothing; nothing at all is an error
    with pytest.raises(ValueError, match="no battles"):
        winrate.arena_hard_score(_verdicts((None, None, 3)))


@pytest.mark.slow
def test_the_bootstrap_interval_is_deterministic_for_a_seed():
    rows = _verdicts(("B>A", "A>B", 18), ("A>B", "B>A", 12), ("A=B", "B>>A", 5), ("B>>A", "A=B", 5))
    a, b = winrate.arena_hard_score(rows, seed=7), winrate.arena_hard_score(rows, seed=7)
    c = winrate.arena_hard_score(rows, seed=8)
    assert a == b and (a["lower"], a["upper"]) != (c["lower"], c["upper"]) and a["score"] == c["score"]
    assert a["lower"] < a["score"] < a["upper"] and a["rounds"] == 100
    out = winrate.arena_hard_rows("m", "sft", rows, seed=7)
    assert [r["metric"] for r in out] == ["bt_win_rate", "bt_win_rate_ci95_lower", "bt_win_rate_ci95_upper"]
    assert out[0]["value"] == a["score"] and out[0]["stderr"] == pytest.approx((a["upper"] - a["lower"]) / 3.92)
