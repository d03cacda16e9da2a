"""The recommendation LM: a GLM-style backbone with LoRA, 2D position tables, and RSLLM's projectors.

- Input embeddings: token embeddings, except ITEM_SLOT tokens (the projected ID-model embedding of
  that item) and USER_SLOT tokens (the projected ID-model sequence representation), plus the
  inter-entity and intra-entity position tables (zero-initialised, so training starts from the
  pretrained backbone's behaviour).
- User vector: the mean-pooled hidden states of the prompt (part A: the history text, its ID tokens
  and the answer blank), through `user_head`, L2-normalised. The same pooling as the item side, and
  both heads start from the same weights: at step 0 the LM term is the backbone's own sentence
  similarity (MiniLM is a sentence-embedding model) between the user's history text and an item's
  text, a zero-shot content recommender that training refines.
- Item vector: mean-pooled hidden states of the item's own text (text only: the LM term is the
  content view, so it also reaches items the ID model knows little about), through `item_head`,
  L2-normalised. The pooled states ("item features") are computed once per epoch without gradient
  (E4SRec/LLM-ESR: a frozen text view of the catalogue) and only `item_head` learns on top of them,
  so the recommendation loss is a softmax over the whole catalogue at the cost of one matrix product.
- LM score: cosine(user vector, item vector) / temperature. The product's ranking score is the
  hybrid of `lakerec.model.hybrid`: the ID side's logit (SASRec, + the text view's when it helps) +
  lm_weight * LM score, the weights chosen on validation with 0 in their grid.
- Alignment (RSLLM's second contrastive loss) happens where the projected ID token lives, in the
  input-embedding space: the item projector's output against the mean input embedding of the
  item's text tokens.
- Text generation (task answers, explanations) infills the blank with a key/value cache; the
  position of each new token is assigned as it is generated (GLM's dynamic 2D positions).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from lakerec.model.backbone import bias_from_allowed
from lakerec.model.glm import Batch, collate
from rec_udf.glm_input import IGNORE, ITEM_SLOT, MAX_INTER, MAX_INTRA, USER_SLOT, SpecialTokens


@dataclass
class RecLLMConfig:
    backbone: str = "minilm"
    dim: int = 128                      # user/item vector size
    id_dim: int = 64                    # ID-model embedding size
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list = field(default_factory=list)   # empty: the backbone's attention + MLP projections
    temperature: float = 0.07

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(inp: int, out: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(inp), nn.Linear(inp, out), nn.GELU(), nn.Linear(out, out))


class RecLLM(nn.Module):
    def __init__(self, backbone: nn.Module, config: RecLLMConfig, special: SpecialTokens, n_items: int):
        super().__init__()
        self.config = config
        self.special = special
        self.backbone = backbone
        hidden = backbone.hidden_size
        self.inter_emb = nn.Embedding(MAX_INTER, hidden)
        self.intra_emb = nn.Embedding(MAX_INTRA, hidden)
        nn.init.zeros_(self.inter_emb.weight)
        nn.init.zeros_(self.intra_emb.weight)
        self.item_projector = _mlp(config.id_dim, hidden)
        self.user_projector = _mlp(config.id_dim, hidden)
        self.user_head = nn.Linear(hidden, config.dim)
        self.item_head = nn.Linear(hidden, config.dim)
        self.item_head.load_state_dict(self.user_head.state_dict())     # one space at step 0 (see above)
        # The hybrid's LM weight (lakerec.model.hybrid), chosen on validation after training; 0 = SASRec alone.
        self.lm_weight = 0.0
        # Frozen ID-model item embeddings (catalogue order); zeros until the ID model is attached.
        self.register_buffer("id_items", torch.zeros(n_items, config.id_dim))

    # --- inputs ----------------------------------------------------------------------------
    def embed(self, batch: Batch, user_states: torch.Tensor | None = None) -> torch.Tensor:
        x = self.backbone.embed_tokens(batch.ids)
        items = self.item_projector(self.id_items[batch.item]) if (batch.slot == ITEM_SLOT).any() else None
        user = self.user_projector(user_states) if user_states is not None else None
        return self.mix_inputs(x, batch.slot, items, user, batch.inter, batch.intra)

    def mix_inputs(self, tokens: torch.Tensor, slot: torch.Tensor, items: torch.Tensor | None,
                   user: torch.Tensor | None, inter: torch.Tensor, intra: torch.Tensor) -> torch.Tensor:
        """Token embeddings with ITEM_SLOT positions replaced by `items` (B, T, H), USER_SLOT positions
        by `user` (B, H), plus the inter/intra-entity position tables. The exported graphs call this
        too, with the projected item table folded in (model_export/graphs.py)."""
        x = tokens
        if items is not None:
            x = torch.where((slot == ITEM_SLOT).unsqueeze(-1), items.to(x.dtype), x)
        if user is not None:
            x = torch.where((slot == USER_SLOT).unsqueeze(-1), user.unsqueeze(1).to(x.dtype), x)
        return x + self.inter_emb(inter) + self.intra_emb(intra)

    def hidden(self, batch: Batch, user_states: torch.Tensor | None = None) -> torch.Tensor:
        embeds = self.embed(batch, user_states)
        hidden, _ = self.backbone(embeds, self.positions(batch), bias_from_allowed(batch.allowed, embeds.dtype))
        return hidden

    def positions(self, batch: Batch) -> torch.Tensor:
        """Backbone positions, capped at its table size (a prompt plus a long candidate list can
        exceed BERT's 512; the inter/intra tables still tell the tokens apart)."""
        return batch.pos.clamp(max=self.backbone.max_positions - 1)

    # --- heads -------------------------------------------------------------------------------
    def user_vectors(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.normalize(self.user_head(self.pooled(hidden, batch.part_a)), dim=-1)

    @staticmethod
    def pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of `hidden` (B, T, H) over the positions where `mask` (B, T) is set (part A)."""
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    @torch.no_grad()
    def _per_item(self, examples, pad_id: int, encode, batch_size: int = 256) -> torch.Tensor:
        device = self.id_items.device
        out = []
        for b in range(0, len(examples), batch_size):
            batch = collate(examples[b:b + batch_size], pad_id).to(device)
            out.append(encode(batch))
        return torch.cat(out)

    def item_features(self, examples, pad_id: int, batch_size: int = 256) -> torch.Tensor:
        """(n_items, hidden) mean-pooled backbone states of per-item text examples
        (`examples.item_examples(unified=False)`), in order; no gradient (refreshed once per epoch)."""
        return self._per_item(examples, pad_id, lambda batch: self.pooled(self.hidden(batch), batch.part_a),
                              batch_size)

    def item_vectors(self, features: torch.Tensor) -> torch.Tensor:
        """Item features -> L2-normalised item vectors (the trainable item head)."""
        return F.normalize(self.item_head(features), dim=-1)

    @torch.no_grad()
    def item_matrix(self, examples, pad_id: int, batch_size: int = 256) -> torch.Tensor:
        """(n_items, dim) item vectors of per-item text examples, in order."""
        return self.item_vectors(self.item_features(examples, pad_id, batch_size))

    def lm_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The LM term: cosine similarity over the temperature, (B, D) x (N, D) -> (B, N)."""
        return users @ items.T / self.config.temperature

    def text_input_vectors(self, examples, pad_id: int) -> torch.Tensor:
        """(n_items, hidden) mean input embedding of each item's text tokens: the alignment target
        of the projected ID embedding, in the same (input-embedding) space."""
        return self._per_item(examples, pad_id,
                              lambda batch: self.pooled(self.backbone.embed_tokens(batch.ids), batch.part_a))

    def id_input_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Projected ID embeddings of catalogue items: the ITEM_SLOT tokens' input embeddings."""
        return self.item_projector(self.id_items[items])

    def lm_loss(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        where = batch.labels != IGNORE
        if not where.any():
            return hidden.sum() * 0.0
        logits = self.backbone.lm_logits(hidden[where])
        return F.cross_entropy(logits.float(), batch.labels[where])

    # --- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: Batch, user_states: torch.Tensor | None = None, max_new_tokens: int = 24,
                 allowed_first: torch.Tensor | None = None) -> tuple[list[list[int]], torch.Tensor]:
        """Greedy infilling of each row's answer blank. `batch` holds part A only. Returns the
        generated token ids per row (without [E]) and the first step's logits (B, V), from which
        rating prediction reads its digit probabilities."""
        embeds = self.embed(batch, user_states)
        _, past = self.backbone(embeds, self.positions(batch), bias_from_allowed(batch.allowed, embeds.dtype))
        n = len(batch.ids)
        device = batch.ids.device
        rows = torch.arange(n, device=device)
        base_pos = self.positions(batch)[rows, batch.blank].unsqueeze(1)
        base_inter = batch.inter[rows, batch.blank].unsqueeze(1)
        seen = batch.part_a.clone()                              # (B, S) columns a new token may see
        token = torch.full((n, 1), self.special.span_start, dtype=torch.long, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        out: list[list[int]] = [[] for _ in range(n)]
        first_logits = None
        for step in range(max_new_tokens):
            intra = torch.full_like(token, min(step + 1, MAX_INTRA - 1))
            x = self.backbone.embed_tokens(token) + self.inter_emb(base_inter) + self.intra_emb(intra)
            seen = torch.cat([seen, torch.ones(n, 1, dtype=torch.bool, device=device)], dim=1)
            bias = bias_from_allowed(seen.unsqueeze(1), x.dtype)
            hidden, past = self.backbone(x, base_pos, bias, past)
            logits = self.backbone.lm_logits(hidden[:, -1]).float()
            if step == 0:
                first_logits = logits
                if allowed_first is not None:
                    logits = logits.masked_fill(~allowed_first, float("-inf"))
            token = logits.argmax(-1, keepdim=True)
            for row in torch.nonzero(~done).flatten().tolist():
                if int(token[row]) == self.special.span_end:
                    done[row] = True
                else:
                    out[row].append(int(token[row]))
            if bool(done.all()):
                break
        return out, first_logits

    # --- trainable parameters ----------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().cpu().contiguous() for name, p in self.named_parameters() if p.requires_grad}


def attach_lora(backbone: nn.Module, config: RecLLMConfig) -> nn.Module:
    """Wrap the backbone's projections with LoRA adapters (peft); base weights frozen. The BERT
    backbone's new LM head is trained in full (it has no pretrained weights)."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer
    targets = list(config.lora_targets) or list(backbone.lora_targets)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, bias="none")
    wrapped = get_peft_model(backbone, lora)
    for name, parameter in wrapped.named_parameters():
        if any(part in name for part in ("lm_transform", "lm_norm", "lm_bias")):
            parameter.requires_grad_(True)
    # peft casts each adapter's input to the adapter's dtype (fp32); under bf16 autocast that is a
    # bf16 -> fp32 -> bf16 round trip of every adapted layer's input (a fifth of a training step on
    # CPU, mostly the 1536-wide FFN activations). Autocast already gives each product its dtype.
    for module in wrapped.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False
    # peft forwards unknown attributes to the wrapped module; make the interface explicit.
    base = wrapped.get_base_model()
    wrapped.hidden_size, wrapped.max_positions = base.hidden_size, base.max_positions
    wrapped.embed_tokens, wrapped.lm_logits = base.embed_tokens, base.lm_logits
    return wrapped
