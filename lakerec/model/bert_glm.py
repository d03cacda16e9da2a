"""`BertGLM`: a readable re-implementation of the BERT encoder (nanoGPT-style) that loads the
pretrained MiniLM-L6 weights, so that the GLM attention mask (bidirectional prompt, causal spans),
the 2D positions and a key/value cache for generation are all under our control and export to ONNX
as plain ops. Its LM head is new (the sentence-transformers checkpoint has none): a transform
layer plus a decoder tied to the word embeddings. It answers the backbone interface of
`lakerec.model.backbone`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        raw = json.loads(Path(path).read_text())
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def attention(q, k, v, attn_bias):
    """Scaled dot-product attention. Under CPU autocast it runs in fp32: PyTorch's CPU flash-attention
    kernel is slower in bf16 than in fp32, forward + backward at training's shapes (~3x at 96-160
    tokens, 1.3x at 256; bench/results/attention_precision.md), while the products around it gain."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_bias.float())
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, attn_bias, past=None, queries=None):
        """queries: the positions that ask (default: all of x); keys and values always come from x."""
        q = self._split(self.query(x if queries is None else queries))
        k, v = self._split(self.key(x)), self._split(self.value(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        out = attention(q, k, v, attn_bias)
        b, _, t, _ = out.shape
        return out.transpose(1, 2).reshape(b, t, -1), (k, v)


class BertLayer(nn.Module):
    """Post-LayerNorm BERT block; module names are the LoRA targets (query, key, value,
    attn_out, ffn_in, ffn_out)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attention = BertSelfAttention(cfg)
        self.attn_out = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, attn_bias, past=None, queries=None):
        """queries: compute the block's output at these positions only (B, T', H), attending to all of
        x; every step after attention is per position, so the result equals forward(x) at them."""
        attended, present = self.attention(x, attn_bias, past, queries)
        x = x if queries is None else queries
        x = self.attn_norm(x + self.dropout(self.attn_out(attended)))
        x = self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))
        return x, present


# HF BertModel state-dict names -> ours
_LAYER_KEYS = {
    "attention.self.query": "attention.query", "attention.self.key": "attention.key",
    "attention.self.value": "attention.value", "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm", "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out", "output.LayerNorm": "ffn_norm",
}
_EMBEDDING_KEYS = {
    "embeddings.word_embeddings": "word_embeddings", "embeddings.position_embeddings": "position_embeddings",
    "embeddings.token_type_embeddings": "token_type_embeddings", "embeddings.LayerNorm": "embedding_norm",
}


def _our_key(hf_key: str) -> str | None:
    key = hf_key.removeprefix("bert.")
    for prefix, ours in _EMBEDDING_KEYS.items():
        if key.startswith(prefix + "."):
            return ours + key[len(prefix):]
    if key.startswith("encoder.layer."):
        _, _, index, rest = key.split(".", 3)
        for prefix, ours in _LAYER_KEYS.items():
            if rest.startswith(prefix + "."):
                return f"layers.{index}.{ours}{rest[len(prefix):]}"
    return None  # pooler and anything else unused


def _at(x, attn_bias, only):
    """(queries (B, 1, H), their additive bias (B, 1, 1, S)) at one position per sequence."""
    if isinstance(only, str):
        if only != "last":
            raise ValueError(f"only must be 'last' or a tensor of positions, not {only!r}")
        return x[:, -1:], attn_bias[:, :, -1:]
    rows = torch.arange(x.shape[0])
    # a key-only mask (B, 1, 1, S) is the same for every query; a full mask has one row per query
    bias = attn_bias if attn_bias.shape[2] == 1 else attn_bias[rows, :, only][:, :, None, :]
    return x[rows, only][:, None, :], bias


class BertGLM(nn.Module):
    kind = "bert"

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.hidden_size = cfg.hidden_size
        self.max_positions = cfg.max_position_embeddings
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.embedding_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))
        # New LM head (BERT-MLM shape), decoder tied to the word embeddings.
        self.lm_transform = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.lm_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.lm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "BertGLM":
        from safetensors.torch import load_file
        path = Path(path)
        model = cls(BertConfig.from_json(path / "config.json"))
        weights = {}
        for hf_key, tensor in load_file(str(path / "model.safetensors")).items():
            ours = _our_key(hf_key)
            if ours is not None:
                weights[ours] = tensor
        missing, unexpected = model.load_state_dict(weights, strict=False)
        new_head = {"lm_transform.weight", "lm_transform.bias", "lm_norm.weight", "lm_norm.bias", "lm_bias"}
        if unexpected or set(missing) - new_head:
            raise ValueError(f"{path}: weights do not match a BERT encoder "
                             f"(missing {sorted(set(missing) - new_head)[:5]}, unexpected {unexpected[:5]})")
        return model

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)

    def forward(self, embeds, position_ids, attn_bias, past=None, only=None):
        """only: the one position per sequence whose final hidden state is wanted -- "last", or a (B,)
        tensor of positions. The last layer then computes that position alone and returns (B, 1, H);
        the keys and values it returns still cover every position. Saves the last layer's per-token
        work in inference graphs; training uses every position."""
        x = embeds + self.position_embeddings(position_ids) + self.token_type_embeddings.weight[0]
        x = self.dropout(self.embedding_norm(x))
        presents = []
        for i, layer in enumerate(self.layers):
            queries, bias = None, attn_bias
            if only is not None and i == len(self.layers) - 1:
                queries, bias = _at(x, attn_bias, only)
            x, present = layer(x, bias, None if past is None else past[i], queries)
            presents.append(present)
        return x, presents

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        h = self.lm_norm(F.gelu(self.lm_transform(hidden)))
        return h @ self.word_embeddings.weight.T + self.lm_bias

    lora_targets = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
