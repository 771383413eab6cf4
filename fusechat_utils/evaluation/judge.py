"""LLM-as-judge through any OpenAI-compatible endpoint (`eval_judge_base_url`, e.g. a local vLLM server).

MT-Bench / AlignBench: single-answer grading, verdict "[[rating]]" (FastChat `single-v1` / AlignBench prompt
shape). Arena-Hard: pairwise against a baseline answer, verdict `[[A>>B]]`..`[[B>>A]]` (regex
`\\[\\[([AB<>=]+)\\]\\]`, as judge_config.yaml). The win rate here counts wins + half ties; the official
show_result.py fits a Bradley-Terry model with bootstrap, which this does not.
Usage: `text = chat(base_url, model, prompt)`; `parse_rating(text)`; `arena_outcome(text)`.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request

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
ARENA_SCORE = {"A>>B": 0.0, "A>B": 0.0, "A=B": 0.5, "B>A": 1.0, "B>>A": 1.0}  # the model is assistant B


def chat(base_url: str, model: str, prompt: str, max_tokens: int = 1024, timeout_s: float = 120.0) -> str:
    """One greedy chat completion; the key comes from OPENAI_API_KEY (any value for a local server)."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0,
                       "max_tokens": max_tokens}).encode()
    request = urllib.request.Request(base_url.rstrip("/") + "/chat/completions", data=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', 'EMPTY')}"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


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


def arena_outcome(text: str) -> float | None:
    """1 = model (B) wins, 0.5 tie, 0 = baseline wins; None when no single verdict is found."""
    verdicts = set(re.findall(r"\[\[([AB<>=]+)\]\]", text or ""))
    if len(verdicts) != 1:
        return None
    return ARENA_SCORE.get(verdicts.pop())


def judge_single(base_url: str, model: str, items: list[dict], answers: list[str]) -> list[dict]:
    rows = []
    for item, answer in zip(items, answers, strict=True):
        verdict = chat(base_url, model, single_prompt(item, answer))
        rows.append({"id": item["id"], "answer": answer, "judgment": verdict, "score": parse_rating(verdict)})
    return rows


def judge_pairwise(base_url: str, model: str, items: list[dict], answers: list[str],
                   baselines: list[str]) -> list[dict]:
    rows = []
    for item, answer, base in zip(items, answers, baselines, strict=True):
        verdict = chat(base_url, model, pairwise_prompt(item, answer, base))
        rows.append({"id": item["id"], "answer": answer, "judgment": verdict, "outcome": arena_outcome(verdict)})
    return rows
