"""Win rates: the toy reward-model judge and Arena-Hard's Bradley-Terry score with its bootstrap interval
(`arena_hard_score`, arena-hard-auto v0.1 show_result.py method). AlpacaEval 2's win rates (raw and length-controlled)
come from the `alpaca_eval` package itself (`alpaca_eval_run`).

Toy: the reward model scores (prompt, response) through its chat template for the evaluated model and for the base
target; a win counts 1, a tie 0.5.
Usage: `reward_scores(rm_path, prompts, responses)`; `pairwise_wins(model_scores, base_scores)`;
`arena_hard_score(judgments)`.
"""

from __future__ import annotations

import math


def reward_scores(rm_path: str, prompts: list[str], responses: list[str], batch_size: int = 16) -> list[float]:
    import torch

    from fusechat_utils.models import device, load_reward_model, load_tokenizer

    tok = load_tokenizer(rm_path, padding_side="right")
    model = load_reward_model(rm_path).to(device()).eval()
    texts = [tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                     tokenize=False) for p, r in zip(prompts, responses, strict=True)]
    scores: list[float] = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            logits = model(**enc.to(model.device)).logits
        scores += logits[:, 0].float().tolist()
    return scores


def pairwise_wins(model_scores: list[float], base_scores: list[float]) -> list[float]:
    return [1.0 if m > b else 0.5 if m == b else 0.0 for m, b in zip(model_scores, base_scores, strict=True)]


def mean_stderr(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


# ---- Arena-Hard: Bradley-Terry with bootstrap (arena-hard-auto v0.1 show_result.py method) --------------------------
# Each judged question gives two games. Game 1 shows the baseline as A and the model as B; game 2 swaps them. A
# verdict becomes a battle between the baseline and the model; a strong verdict (A>>B, B>>A) counts WEIGHT battles.
# Unparsed verdicts count nothing. The ratings are the maximum-likelihood Bradley-Terry fit (unpenalised logistic
# regression, no intercept, base 10 / scale 400 as Elo, each battle counted twice with a tie as one win each way);
# the score is the predicted win rate of the model against the baseline, in percent. The 95% interval comes from
# `rounds` bootstrap resamples of the battles (seeded), their ratings' 2.5th and 97.5th percentiles turned into win
# rates the same way.
ARENA_WEIGHT = 3
ARENA_BASELINE = "gpt-4-0314"
_GAME1 = {"A>B": "baseline", "A>>B": "baseline", "B>A": "model", "B>>A": "model", "A=B": "tie"}
_GAME2 = {"A>B": "model", "A>>B": "model", "B>A": "baseline", "B>>A": "baseline", "A=B": "tie"}


def arena_battles(judgments: list[dict], weight: int = ARENA_WEIGHT, first_game_only: bool = False) -> list[str]:
    """Winners ('model', 'baseline', 'tie'), one per battle, from rows {"games": [{"score": label}, {...}]}."""
    battles = []
    for row in judgments:
        games = row["games"][:1] if first_game_only else row["games"][:2]
        for table, game in zip((_GAME1, _GAME2), games):
            label = (game or {}).get("score")
            if label in table:
                battles += [table[label]] * (weight if ">>" in label else 1)
    return battles


def bt_ratings(winners, players: tuple[str, str] = ("model", "baseline"), scale: float = 400.0, base: float = 10.0,
               init: float = 1000.0) -> dict[str, float]:
    """Elo-scale Bradley-Terry ratings of the two players from their battles, the baseline anchored at `init`."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model, baseline = players
    counts = {w: 0 for w in (model, baseline, "tie")}
    for w in winners:
        counts[w] += 1
    if sum(counts.values()) == 0:
        raise ValueError("no battles: every verdict failed to parse")
    # every battle appears twice with player A = baseline, B = model: y = 1 when A wins; a tie is one win each way
    x = np.array([[math.log(base), -math.log(base)]] * 2)  # columns: baseline, model
    y = np.array([1.0, 0.0])
    w = np.array([2 * counts[baseline] + counts["tie"], 2 * counts[model] + counts["tie"]], dtype=float)
    if w.min() == 0:  # one-sided: the likelihood has no finite maximum; a vanishing counter-weight (1e-9) keeps the
        w = np.where(w > 0, w, w.max() * 1e-9)  # fit finite, ~3600 Elo apart, a win rate of 100.0 to 7 digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8, max_iter=1000)
        lr.fit(x, y, sample_weight=w)
    coef_baseline, coef_model = lr.coef_[0]
    ratings = {baseline: scale * coef_baseline + init, model: scale * coef_model + init}
    shift = init - ratings[baseline]
    return {k: v + shift for k, v in ratings.items()}


def predicted_win_rate(rating: float, baseline_rating: float, scale: float = 400.0, base: float = 10.0) -> float:
    return 1.0 / (1.0 + base ** ((baseline_rating - rating) / scale))


def arena_hard_score(judgments: list[dict], rounds: int = 100, seed: int = 42, weight: int = ARENA_WEIGHT,
                     first_game_only: bool = False) -> dict:
    """{"score", "lower", "upper" (percent, 95% bootstrap interval), "n_battles", "n_questions", "rounds", "seed"}."""
    import numpy as np

    battles = arena_battles(judgments, weight, first_game_only)
    full = bt_ratings(battles)
    score = 100 * predicted_win_rate(full["model"], full["baseline"])
    rng = np.random.default_rng(seed)
    arr = np.array(battles)
    boot = []
    for _ in range(rounds):
        sample = arr[rng.integers(0, len(arr), len(arr))]
        r = bt_ratings(sample.tolist())
        boot.append(r["model"] - r["baseline"])
    lo, hi = (np.percentile(boot, [2.5, 97.5]) if boot else (full["model"] - full["baseline"],) * 2)
    return {"score": float(score), "lower": float(100 * predicted_win_rate(lo, 0.0)),
            "upper": float(100 * predicted_win_rate(hi, 0.0)),
            "n_battles": len(battles), "n_questions": len(judgments), "rounds": rounds, "seed": seed,
            "weight": weight}


def arena_hard_rows(model: str, stage: str, judgments: list[dict], rounds: int = 100, seed: int = 42) -> list[dict]:
    """results.csv rows: the BT win rate (stderr = 95% interval width / 3.92) and the interval's two ends."""
    from fusechat_utils.evaluation.step import result_row

    s = arena_hard_score(judgments, rounds, seed)
    n = s["n_questions"]
    name = "Arena-Hard (WR %)"
    return [result_row(model, stage, name, "bt_win_rate", s["score"], n, (s["upper"] - s["lower"]) / 3.92),
            result_row(model, stage, name, "bt_win_rate_ci95_lower", s["lower"], n, None),
            result_row(model, stage, name, "bt_win_rate_ci95_upper", s["upper"], n, None)]
