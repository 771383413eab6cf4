"""Modelling code of ArmoRM's stand-in (RLHFlow/ArmoRM-Llama3-8B-v0.1), the kit's own, saved beside the stand-in's
weights by `chat_templates.stand_in_reward_model` and loaded back through `trust_remote_code`, as ArmoRM's
`modeling_custom.py` is: `AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)`.

It keeps the contract scoring.py relies on (recipe notes §5: how ArmoRM is called), not ArmoRM's weights or code:
- `num_objectives` regression rewards read at the last non-pad token, found through `config.pad_token_id` (right
  padding; ArmoRM's pad id 128256 lies outside its text vocabulary, so the embedding has 128,257 rows);
- a gating network read at the LAST occurrence of the assistant-turn header (`config.gating_token_pattern`), and a
  ValueError when an input lacks it, i.e. was not rendered with the Llama 3 template;
- the output carries `.score` (batch,) and `.logits` (the same values), which scoring reads as `output.score`.
Only torch and transformers are imported: transformers copies this file into its modules cache and imports it there.
Usage: `model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`;
`model(input_ids=ids, attention_mask=mask).score`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import LlamaModel, LlamaPreTrainedModel
from transformers.utils import ModelOutput

# The assistant-turn header ArmoRM gates on: eot of the user turn, then the assistant header (ArmoRM hard-codes
# its ids [128009, 128006, 78191, 128007, 271]; the stand-in stores its own tokenizer's ids in the config).
GATING_TEXT = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>"


def gating_pattern(tokenizer) -> list[int]:
    """The ids of GATING_TEXT under `tokenizer` (what `config.gating_token_pattern` holds)."""
    return tokenizer(GATING_TEXT, add_special_tokens=False)["input_ids"]


@dataclass
class RewardOutput(ModelOutput):
    """ArmoRM's output fields: per-objective rewards, the gate's weights, and the scalar score (= logits)."""

    rewards: torch.FloatTensor | None = None
    gating_output: torch.FloatTensor | None = None
    score: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None


def last_position(ids: list[int], pattern: list[int]) -> int:
    """Start of the last occurrence of `pattern` in `ids`; ValueError when it does not occur (as ArmoRM)."""
    for j in range(len(ids) - len(pattern), -1, -1):
        if ids[j:j + len(pattern)] == pattern:
            return j
    raise ValueError("gating token pattern not found: the input was not rendered with the reward model's template")


class ArmoRMStandIn(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        k = config.num_objectives
        self.regression_layer = nn.Linear(config.hidden_size, k, bias=False)
        self.gating = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.ReLU(),
                                    nn.Linear(config.hidden_size, k))
        self.post_init()

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                **kwargs) -> RewardOutput:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(input_ids.shape[0], device=hidden.device)
        # the token before the first pad (a row without pads: its last token), as ArmoRM finds it
        last = (torch.eq(input_ids, self.config.pad_token_id).int().argmax(-1) - 1) % input_ids.shape[-1]
        rewards = self.regression_layer(hidden[rows, last.to(hidden.device)])
        gate_at = [last_position(ids, list(self.config.gating_token_pattern)) for ids in input_ids.tolist()]
        gate = torch.softmax(self.gating(hidden[rows, gate_at]) / self.config.gating_temperature, dim=-1)
        score = (gate * rewards).sum(-1)
        return RewardOutput(rewards=rewards, gating_output=gate, score=score, logits=score)
