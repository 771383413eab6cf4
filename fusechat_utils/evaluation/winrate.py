"""Win rates: the toy reward-model judge and AlpacaEval 2's length-controlled win rate (offline).

Toy: the reward model scores (prompt, response) through its chat template for the evaluated model and for the base
target; a win counts 1, a tie 0.5. AlpacaEval 2: `alpaca_eval.metrics.get_length_controlled_winrate` with
`glm_name="length_controlled_minimal"` and a stub instruction-difficulty table (all 0), because the official
`length_controlled_v1` downloads `df_gamed.csv` from the hub. The two differ (v1 also regresses on instruction
difficulty); the results record which one ran.
Usage: `reward_scores(rm_path, prompts, responses)`; `lc_win_rate(preferences, model_outputs, base_outputs)`.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path


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


def lc_win_rate(preferences: list[float], model_outputs: list[str], base_outputs: list[str]) -> dict:
    """AlpacaEval 2 LC win rate (percent) from preferences (1 = base wins, 2 = model wins, 1.5 = tie)."""
    import pandas as pd
    from alpaca_eval.metrics import get_length_controlled_winrate
    from alpaca_eval.metrics import glm_winrate as glm

    n = len(preferences)
    df = pd.DataFrame({"preference": [float(p) for p in preferences], "output_1": base_outputs,
                       "output_2": model_outputs, "index": range(n), "generator_1": "baseline",
                       "generator_2": "model", "annotator": None})
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp) / "df_gamed_stub.csv"
        pd.DataFrame({"model": "baseline", "index": range(n), "instruction_difficulty": 0.0}).to_csv(stub, index=False)
        original = glm.hf_hub_download
        glm.hf_hub_download = lambda **kw: str(stub)
        try:
            out = get_length_controlled_winrate(df, glm_name="length_controlled_minimal", save_weights_dir=None)
        finally:
            glm.hf_hub_download = original
    return {**{k: float(v) for k, v in out.items() if isinstance(v, (int, float))}, "glm_name": "length_controlled_minimal"}
