"""The toy world's models: 4 source architectures, a target of a fifth, a reward model; each with its own
tokenizer (trained here with `tokenizers`) and its own chat template in its family's real style.

All causal models use head_dim 64: vLLM's CPU attention rejects smaller heads (16 fails).
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

LLAMA3 = ("{{ '<|begin_of_text|>' }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
          "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
          "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
GEMMA = ("{{ '<bos>' }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}"
         "\n{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
MISTRAL = ("{{ '<s>' }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
           "{% else %}{{ m['content'] }}</s>{% endif %}{% endfor %}")
# The target's template marks assistant turns with {% generation %}, so TRL can train on assistant tokens only.
TARGET = ("{% for m in messages %}<|{{ m['role'] }}|>{% if m['role'] == 'assistant' %}{% generation %}"
          "{{ m['content'] }}<|end|>{% endgeneration %}{% else %}{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>{% endif %}")
REWARD = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@dataclass(frozen=True)
class Spec:
    name: str
    arch: str  # transformers model_type: llama | qwen2 | gemma2 | mistral | qwen3
    template: str
    specials: tuple[str, ...]  # (pad, bos, eos, *others)
    vocab_size: int
    hidden: int = 128
    layers: int = 2
    heads: int = 2  # head_dim = hidden / heads = 64


SOURCES = [
    Spec("src-llama", "llama", LLAMA3, ("<|pad|>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                                         "<|end_header_id|>"), 420),
    Spec("src-qwen2", "qwen2", CHATML, ("<|endoftext|>", "<|bos|>", "<|im_end|>", "<|im_start|>"), 480, 64, 2, 1),
    Spec("src-gemma2", "gemma2", GEMMA, ("<pad>", "<bos>", "<end_of_turn>", "<start_of_turn>"), 380, 64, 2, 1),
    Spec("src-mistral", "mistral", MISTRAL, ("<pad>", "<s>", "</s>", "[INST]", "[/INST]"), 450, 64, 2, 1),
]
# The target is h128 (2 heads): at h64 (106k params) it learned held-out addition from the SFT set on some seeds only
# (3.1 / 39.5 / 54.9 % for seeds 0-2; 50 % even on the SFT set's own math prompts), at h128 on seeds 0-2
# (68.5 / 67.3 / 48.1 % after 1200 steps). Few pre-training steps keep it weak at the start (Recipe.target_steps).
TARGET_SPEC = Spec("target", "qwen3", TARGET, ("<|pad|>", "<|bos|>", "<|end|>", "<|user|>", "<|assistant|>"), 360,
                   128, 2, 2)
REWARD_SPEC = Spec("reward", "llama", REWARD, ("<|pad|>", "<|bos|>", "<|end|>", "<|user|>", "<|assistant|>"), 400,
                   hidden=64, heads=1)


def train_tokenizer(spec: Spec, corpus: list[str]):
    """A byte-level BPE with single-digit pre-tokenization, wrapped as a transformers tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=spec.vocab_size, min_frequency=2, special_tokens=list(spec.specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    pad, bos, eos = spec.specials[:3]
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, bos_token=bos, eos_token=eos,
                                   chat_template=spec.template)


def model_config(spec: Spec, tok, max_positions: int = 256, num_labels: int | None = None):
    from transformers import AutoConfig

    kw = dict(vocab_size=len(tok), hidden_size=spec.hidden, intermediate_size=2 * spec.hidden,
              num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
              head_dim=spec.hidden // spec.heads, max_position_embeddings=max_positions,
              pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
              tie_word_embeddings=True)
    if spec.arch == "gemma2":
        kw.update(query_pre_attn_scalar=spec.hidden // spec.heads, sliding_window=max_positions)
    if spec.arch in ("qwen2", "qwen3"):
        kw.update(use_sliding_window=False)
    if spec.arch == "mistral":
        kw.update(sliding_window=None)
    if num_labels is not None:
        kw.update(num_labels=num_labels)
    return AutoConfig.for_model(spec.arch, **kw)


def new_model(spec: Spec, tok, seed: int, num_labels: int | None = None):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    config = model_config(spec, tok, num_labels=num_labels)
    attn = {"attn_implementation": "eager"} if spec.arch == "gemma2" else {}
    if num_labels is not None:
        return AutoModelForSequenceClassification.from_config(config, **attn)
    model = AutoModelForCausalLM.from_config(config, **attn)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model
SPECS = {spec.name: spec for spec in [*SOURCES, TARGET_SPEC, REWARD_SPEC]}
