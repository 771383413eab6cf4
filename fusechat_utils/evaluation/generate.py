"""Greedy batch generation through a model's own chat template (transformers, left padding): the toy backend.

`generate_raw` / `generate_raw_vllm` send FuseEval's raw prompt texts (template applied by the benchmark's module)
with its decoding: transformers on CPU, vLLM on GPU nodes (or in `.venv-vllm` on CPU). Usage: `outputs = generate_chat("outputs/toy_world/models/target", ["2+2?"], max_new_tokens=64)`.
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


# Sampling keys the transformers backend honours; the others (presence/frequency penalty) only vLLM has, so
# `settings_note` records them as not applied rather than dropping them silently.
HF_SAMPLING = ("temperature", "top_p", "top_k", "repetition_penalty")


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The text up to the first stop string, which is left out, as vLLM returns it."""
    ends = [i for i in (text.find(s) for s in stop or []) if i >= 0]
    return text[:min(ends)] if ends else text


def _sample_kwargs(decoding: dict) -> dict:
    """generate() arguments for one decoding; temperature below 1e-4 means greedy (FuseEval's rule)."""
    temperature = float(decoding.get("temperature") or 0.0)
    if temperature < 1e-4:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    kw = {"do_sample": True, "temperature": temperature, "top_p": decoding.get("top_p", 1.0),
          "top_k": decoding.get("top_k") or None}
    if decoding.get("repetition_penalty"):
        kw["repetition_penalty"] = decoding["repetition_penalty"]
    return kw


def generate_raw(model_path: str, texts: list[str], decoding: dict, batch_size: int = 16,
                 dtype: str = "auto", label: str = "") -> list[list[str]]:
    """`decoding["n"]` samples per raw prompt (the prompt text is sent as is: its template is already applied).
    Prints a progress line (`label`, prompts done, tokens/s, ETA) at most every 30 s."""
    import torch

    from fusechat_utils.models import device, load_causal_lm, load_tokenizer
    from fusechat_utils.progress import Progress

    tokenizer = load_tokenizer(model_path, padding_side="left")
    model = load_causal_lm(model_path, dtype=dtype).to(device()).eval()
    n = int(decoding.get("n") or 1)
    kwargs = {**_sample_kwargs(decoding), "max_new_tokens": int(decoding["max_tokens"]), "num_return_sequences": n,
              "pad_token_id": tokenizer.pad_token_id}
    if decoding.get("stop"):  # stop early as vLLM does; the text is still cut at the stop string below
        kwargs.update(stop_strings=list(decoding["stop"]), tokenizer=tokenizer)
    if decoding.get("seed") is not None:
        torch.manual_seed(int(decoding["seed"]))
    outputs: list[list[str]] = []
    progress = Progress(label or model_path, len(texts), unit="prompts")
    for i in range(0, len(texts), batch_size):
        # Special tokens are added as vLLM's generate(text) adds them, so both backends see the tokens FuseEval's
        # runs saw (a raw template that writes BOS gets a second one there too).
        enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True).to(model.device)
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
        new_ids = out[:, enc["input_ids"].shape[1]:]
        new = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        new = [cut_at_stop(t, decoding.get("stop")) for t in new]
        outputs += [new[j:j + n] for j in range(0, len(new), n)]
        progress.update(len(new) // n, tokens=int((new_ids != tokenizer.pad_token_id).sum()))
    progress.done()
    return outputs


def generate_raw_vllm(model_path: str, texts: list[str], decoding: dict, python: str = "",
                      dtype: str = "bfloat16", label: str = "") -> list[list[str]]:
    """The same with vLLM (paper profiles): every sampling key of the decoding applies. `python`: the interpreter
    of a venv that has vLLM (its own venv on CPU, `.venv-vllm`); empty: vLLM in this interpreter. Progress lines
    as generate_raw's (progress.vllm_progress)."""
    import json
    import tempfile
    from pathlib import Path

    from fusechat_utils import vllm_generate, vllm_launch

    request = {"model": model_path, "texts": texts, "decoding": decoding, "dtype": dtype, "label": label}
    if not python:
        return vllm_generate.generate(request)
    with tempfile.TemporaryDirectory(prefix="fusechat-vllm-") as tmp:
        req, out = Path(tmp) / "request.json", Path(tmp) / "out.json"
        req.write_text(json.dumps(request))
        code = vllm_launch.run_module(python, "fusechat_utils.vllm_generate", [str(req), str(out)])
        if code != 0 or not out.exists():
            raise RuntimeError(f"vLLM generation ({vllm_launch.python_path(python)}) for {model_path} exited with "
                               f"{code}")
        return json.loads(out.read_text())


def settings_note(decoding: dict, backend: str) -> str:
    """Which of FuseEval's sampling keys a backend does not apply (recorded in eval_settings.json)."""
    if backend == "vllm":
        return ""
    skipped = [k for k in ("presence_penalty", "frequency_penalty") if decoding.get(k)]
    return f"transformers backend: {', '.join(skipped)} not applied" if skipped else ""
