"""SASRec (Kang & McAuley, 2018): a causal self-attention sequential recommender over item ids,
trained with full cross-entropy over the catalogue (the strongest ID baseline in recent
re-evaluations). Its item embeddings also feed the LM through the RSLLM projector.

Item index 0 is padding; catalogue item i is index i + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SASRecConfig:
    n_items: int
    max_len: int = 50
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2


class SASRec(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        self.item_emb = nn.Embedding(config.n_items + 1, config.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len, config.dim)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, dim_feedforward=config.dim * 4,
                                           dropout=config.dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """seq: (batch, max_len) item indices, left-padded with 0 -> (batch, max_len, dim)."""
        length = seq.shape[1]
        positions = torch.arange(length, device=seq.device).unsqueeze(0)
        x = self.item_emb(seq) * (self.config.dim ** 0.5) + self.pos_emb(positions)
        x = self.dropout(x) * (seq > 0).unsqueeze(-1)
        causal = torch.triu(torch.full((length, length), float("-inf"), device=seq.device), diagonal=1)
        x = self.encoder(x, mask=causal)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over the whole catalogue (padding column excluded)."""
        return hidden @ self.item_emb.weight[1:].T

    def loss(self, seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Full cross-entropy at every non-padded position; target index 0 is ignored."""
        logits = self.logits(self.hidden(seq))
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), (target - 1).reshape(-1),
                                           ignore_index=-1)

    @torch.no_grad()
    def user_embedding(self, seq: torch.Tensor) -> torch.Tensor:
        """Representation of the next item after each sequence: the last position's hidden state."""
        return self.hidden(seq)[:, -1, :]

    @torch.no_grad()
    def full_sort_scores(self, seq: torch.Tensor) -> torch.Tensor:
        return self.logits(self.user_embedding(seq))

    def item_embeddings(self) -> torch.Tensor:
        """(n_items, dim) catalogue embeddings, index i = catalogue item i."""
        return self.item_emb.weight[1:].detach()
