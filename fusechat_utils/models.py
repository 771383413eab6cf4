"""Loading models and tokenizers: one code path for hub ids and for the toy world's local folders.

The toy world saves its models with `save_pretrained`; paper profiles name hub ids. Both go through
`from_pretrained` here, so what runs on the toy models is exactly what runs on the real ones.
"""

from __future__ import annotations

import os

# Offline by default: a mistyped local path fails at once instead of trying the hub. Users on a networked
# machine set HF_HUB_OFFLINE=0 to download the paper's models.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Architectures whose transformers implementation refuses SDPA (Gemma2 softcapping needs eager attention).
EAGER_ONLY = {"gemma2"}


def load_tokenizer(name_or_path: str, padding_side: str = "right", **kwargs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _attn_kwargs(name_or_path: str, trust_remote_code: bool) -> dict:
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code).model_type
    return {"attn_implementation": "eager"} if model_type in EAGER_ONLY else {}


def resolve_dtype(dtype: str):
    """'auto' -> bfloat16 on a GPU that supports it, float32 on CPU; otherwise the named torch dtype."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, dtype)


def load_causal_lm(name_or_path: str, dtype: str = "auto", trust_remote_code: bool = False, **kwargs):
    from transformers import AutoModelForCausalLM

    kwargs = {**_attn_kwargs(name_or_path, trust_remote_code), **kwargs}
    return AutoModelForCausalLM.from_pretrained(
        name_or_path, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code, **kwargs
    )


def load_reward_model(name_or_path: str, dtype: str = "auto", trust_remote_code: bool = False, **kwargs):
    from transformers import AutoModelForSequenceClassification

    kwargs = {**_attn_kwargs(name_or_path, trust_remote_code), **kwargs}
    return AutoModelForSequenceClassification.from_pretrained(
        name_or_path, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code, **kwargs
    )


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
