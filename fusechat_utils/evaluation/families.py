"""Which prompt family a model is evaluated with: one of FuseEval's three, or its own chat template.

FuseEval hard-codes raw prompt strings for three target families (llama3, qwen25, gemma2), full of that family's
special tokens. A model outside them (SmolLM2: `model_type: llama`, but a ChatML template) must never get them:
its tokenizer splits `<|start_header_id|>` into pieces and the model echoes the prompt. `NATIVE`
("chat_template") renders FuseEval's instruction inside the model's *own* template (`apply_chat_template`).
`auto` takes the family from config.json's model_type, then checks by rendering that the tokenizer's template
is that family's (its turn markers, each one token of the vocabulary); if not, NATIVE. A leaf module: imports
nothing of the kit but errors.
Usage: `family, why = detect("outputs/models/SmolLM2-135M-Instruct", "auto", tokenizer)`.
"""

from __future__ import annotations

import json
from pathlib import Path

from fusechat_utils.errors import UserError

FAMILIES = ("llama3", "qwen25", "gemma2")
NATIVE = "chat_template"
PROMPT_FAMILIES = (*FAMILIES, NATIVE)
# model_type in a model's config.json -> FuseEval's prompt family (its templates exist for these three).
MODEL_TYPE_FAMILY = {"llama": "llama3", "qwen2": "qwen25", "qwen3": "qwen25", "gemma2": "gemma2", "gemma": "gemma2"}
# What a family's template renders for a user turn, and the special tokens its raw prompts send.
USER_TURN = {"llama3": "<|start_header_id|>user<|end_header_id|>\n\n", "qwen25": "<|im_start|>user\n",
             "gemma2": "<start_of_turn>user\n"}
SPECIAL_TOKENS = {"llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
                  "qwen25": ("<|im_start|>", "<|im_end|>"), "gemma2": ("<start_of_turn>", "<end_of_turn>")}
PROBE = [{"role": "user", "content": "Hello"}]


def model_type_family(model: str) -> tuple[str | None, str]:
    """(family, model_type) from a local folder's config.json, or from a hub id's name."""
    config = Path(model) / "config.json"
    if config.exists():
        model_type = json.loads(config.read_text()).get("model_type", "")
    else:
        model_type = next((k for k in MODEL_TYPE_FAMILY if k in model.lower()), "")
    return MODEL_TYPE_FAMILY.get(model_type), model_type


def missing_tokens(tokenizer, family: str) -> list[str]:
    """The family's special tokens that are not one token of this tokenizer's vocabulary."""
    vocab = tokenizer.get_vocab()
    return [t for t in SPECIAL_TOKENS[family] if t not in vocab]


def renders_as(tokenizer, family: str) -> bool:
    """Whether the tokenizer's own template renders a user turn as the family's, with its special tokens."""
    if not getattr(tokenizer, "chat_template", None) or missing_tokens(tokenizer, family):
        return False
    try:
        text = tokenizer.apply_chat_template(PROBE, tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that cannot render a user turn is not the family's
        return False
    return USER_TURN[family] + "Hello" in text


def detect(model: str, configured: str = "auto", tokenizer=None) -> tuple[str, str]:
    """(prompt family, why) for a model; the tokenizer is the model's (None: a hub id not on disk, trusted by name)."""
    if configured != "auto":
        if configured not in PROMPT_FAMILIES:
            raise UserError(f"eval_prompt_family must be auto or one of {', '.join(PROMPT_FAMILIES)}, "
                            f"got {configured!r}")
        if tokenizer is not None and configured in FAMILIES and missing_tokens(tokenizer, configured):
            raise UserError(f"{model}: eval_prompt_family {configured} sends {', '.join(SPECIAL_TOKENS[configured])}"
                            f", but its tokenizer lacks {', '.join(missing_tokens(tokenizer, configured))}; use "
                            f"{NATIVE} (the model's own template) or auto")
        return configured, "eval_prompt_family"
    family, model_type = model_type_family(model)
    if tokenizer is None:
        if family is None:
            raise UserError(f"{model}: no FuseEval prompt family for model_type {model_type!r} and no local "
                            f"tokenizer to render; set eval_prompt_family to one of {', '.join(PROMPT_FAMILIES)}")
        return family, f"model_type {model_type!r} (hub id, not rendered)"
    if family and renders_as(tokenizer, family):
        return family, f"model_type {model_type!r}; its template renders as {family}'s"
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{model}: its tokenizer has no chat template and model_type {model_type!r} is not of "
                        f"FuseEval's families ({', '.join(FAMILIES)}) as rendered; set eval_prompt_family")
    why = f"{family}'s turn markers" if family else "a FuseEval family"
    return NATIVE, f"model_type {model_type!r}, but its own template does not render {why}: its chat template"


def check(family: str, where: str) -> None:
    if family not in PROMPT_FAMILIES:
        raise UserError(f"{where}: unknown prompt family {family!r}; known: {', '.join(PROMPT_FAMILIES)}")


def system_then_user(tokenizer, system: str, user: str) -> str:
    """A system and a user turn in the model's own template, then its generation prompt; a template that refuses
    a system turn (Gemma's) gets the instruction after the user text, as FuseEval's gemma2 prompts put it."""
    try:
        return tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                             tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - jinja raises whatever the template's raise_exception says
        return user_turn(tokenizer, f"{user}\n{system}")


def user_turn(tokenizer, user: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)
