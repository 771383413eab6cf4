"""Random-weight tiny causal LMs for tests and benchmarks, built offline in a second: a toy-world tokenizer (its
spec's chat template) and a small config, saved with `save_pretrained` so they load like hub ids.

Usage: `path = tiny_causal_lm(folder, corpus, spec="src-qwen2", layers=1)`.
"""

from __future__ import annotations

from pathlib import Path


def tiny_causal_lm(path: str | Path, corpus: list[str], *, spec: str = "src-llama", arch: str = "llama",
                   hidden: int = 128, layers: int = 1, max_positions: int = 512, seed: int = 0) -> str:
    """head_dim is fixed at 64 (hidden // 64 heads): vLLM's CPU attention rejects smaller heads."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from fusechat_utils.toy.nets import SPECS, train_tokenizer

    tok = train_tokenizer(SPECS[spec], corpus)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    heads = hidden // 64
    config = AutoConfig.for_model(arch, vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                                  num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                                  max_position_embeddings=max_positions, bos_token_id=tok.bos_token_id,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return str(path)
