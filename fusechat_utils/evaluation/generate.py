"""Greedy batch generation through a model's own chat template (transformers, left padding): the toy backend.

Paper profiles generate with vLLM inside the harnesses (lm-eval `vllm`, FuseEval scripts); this path is what runs
on CPU. Usage: `outputs = generate_chat("outputs/toy_world/models/target", ["2+2?"], max_new_tokens=64)`.
"""

from __future__ import annotations


def chat_messages(prompt: str, system: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": prompt}]


def render_prompts(tokenizer, prompts: list[str], system: str | None = None) -> list[str]:
    """Each prompt as the model's chat template renders a user turn plus the generation prompt."""
    return [tokenizer.apply_chat_template(chat_messages(p, system), tokenize=False, add_generation_prompt=True)
            for p in prompts]


def _generate_batch(model, tokenizer, texts: list[str], max_new_tokens: int) -> list[str]:
    import torch

    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    new = out[:, enc["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


def generate_chat(model_path: str, prompts: list[str], max_new_tokens: int = 256, batch_size: int = 16,
                  system: str | None = None, dtype: str = "auto") -> list[str]:
    """Greedy responses, one per prompt, in order."""
    from fusechat_utils.models import device, load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(model_path, padding_side="left")
    model = load_causal_lm(model_path, dtype=dtype).to(device()).eval()
    # Greedy: clear sampling defaults a model's generation_config may carry, so nothing warns or samples.
    for key in ("temperature", "top_p", "top_k"):
        if hasattr(model.generation_config, key):
            setattr(model.generation_config, key, None)
    texts = render_prompts(tokenizer, prompts, system)
    outputs: list[str] = []
    for i in range(0, len(texts), batch_size):
        outputs += _generate_batch(model, tokenizer, texts[i:i + batch_size], max_new_tokens)
    return outputs
