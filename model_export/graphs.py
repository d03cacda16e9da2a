"""The three ONNX graphs of a bundle, as torch modules over a LoRA-merged RecLLM, and their export.

  sequence_encoder  id_sequence (B, S) -> user_slot (B, H), id_state (B, d)
      SASRec over the user's item indices (catalogue index + 1, left-padded with 0): its user state
      (with a seed ensemble, each member's, divided by the member count) and, with a text view, the
      weighted text view's after it (the ID side of the hybrid score,
      `lakerec.model.hybrid.IDSide.score_state`), and, through the user projector over SASRec's
      state, the USER slot's input embedding. Run once per user; both LM graphs take the slot.
  user_encoder      prompt tensors + user_slot + id_state -> user_vector (B, d + D)
      Part A of the scoring prompt (bidirectional, padding masked), its mean-pooled hidden states
      through user_head, L2-normalised, scaled by lm_weight / temperature and put after SASRec's
      state (`lakerec.model.hybrid.user_vector`). Scores are user_vector . item_matrix, the item
      matrix being [ID-side item embeddings ; item text vector]: the hybrid score in one dot product.
  generator         prompt or step tensors + attention_mask (B, T, past + T) + past K/V
      -> logits of the last position (B, V) + present K/V. The same graph runs the prompt pass
      (past of length 0) and every decoding step (one token, past = everything before), and
      generation without a cache (the whole sequence each step, the GLM mask in attention_mask).

The projected ID item embeddings are folded into one table (n_items, H) inside the LM graphs, so
the runtime gathers rows instead of running the projector MLP per token.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from lakerec.model import hybrid
from lakerec.model.bert_glm import BertGLM
from lakerec.model.hybrid import IDSide
from lakerec.model.recllm import RecLLM
from lakerec.model.sasrec import SASRec

OPSET = 17
PROMPT_INPUTS = ["input_ids", "slot", "item", "positions", "inter", "intra"]


class SequenceEncoder(nn.Module):
    def __init__(self, model: RecLLM, id_model: IDSide):
        super().__init__()
        self.id_model, self.user_projector = id_model, model.user_projector
        # The text view's item table as a constant (its adapter would otherwise run over every item per call).
        with torch.no_grad():
            self.text_table = id_model.text_view.item_table().detach().clone() if id_model.text_view else None

    def forward(self, id_sequence):
        state = self.id_model.last_hidden(id_sequence)              # SASRec's: the USER slot's source
        return self.user_projector(state), self.id_model.score_state(id_sequence, state, self.text_table)


class _PromptInputs(nn.Module):
    """Input embeddings exactly as RecLLM.embed builds them, with the item projector folded."""

    def __init__(self, model: RecLLM):
        super().__init__()
        self.model = model
        with torch.no_grad():
            self.register_buffer("item_slot_table", model.item_projector(model.id_items).detach().clone())

    def embed(self, input_ids, slot, item, inter, intra, user_slot):
        m = self.model
        return m.mix_inputs(m.backbone.embed_tokens(input_ids), slot, self.item_slot_table[item], user_slot,
                            inter, intra)

    def positions(self, positions):
        return positions.clamp(max=self.model.backbone.max_positions - 1)


def _bias(attention_mask, dtype):
    """1 = may attend -> additive bias with a heads axis: (B, S) key mask -> (B, 1, 1, S),
    (B, T, S) full mask -> (B, 1, T, S). -1e4 rather than the dtype's minimum so the graph stays
    finite after an fp16 conversion."""
    bias = (1.0 - attention_mask.to(dtype)) * -1e4
    return bias[:, None, None, :] if attention_mask.dim() == 2 else bias[:, None, :, :]


class UserEncoder(_PromptInputs):
    def forward(self, input_ids, slot, item, positions, inter, intra, attention_mask, user_slot, id_state):
        x = self.embed(input_ids, slot, item, inter, intra, user_slot)
        hidden, _ = self.model.backbone(x, self.positions(positions), _bias(attention_mask, x.dtype))
        lm_user = F.normalize(self.model.user_head(self.model.pooled(hidden, attention_mask)), dim=-1)
        return hybrid.user_vector(id_state, lm_user, self.model.lm_weight, self.model.config.temperature)


class Generator(_PromptInputs):
    def forward(self, input_ids, slot, item, positions, inter, intra, attention_mask, user_slot, *past_flat):
        x = self.embed(input_ids, slot, item, inter, intra, user_slot)
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        hidden, presents = self.model.backbone(x, self.positions(positions), _bias(attention_mask, x.dtype),
                                               past, only="last")      # logits of the last position only
        logits = self.model.backbone.lm_logits(hidden[:, -1])
        return (logits, *[t for pair in presents for t in pair])


@dataclass
class GraphSpec:
    """What the manifest records about a graph: file, input and output names, dtypes, shapes."""
    file: str
    inputs: list[dict]
    outputs: list[dict]

    def to_dict(self) -> dict:
        return {"file": self.file, "inputs": self.inputs, "outputs": self.outputs}


def _io(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


def merged(model: RecLLM) -> RecLLM:
    """Fold the LoRA adapters into the base weights (peft merge_and_unload); eval mode."""
    if hasattr(model.backbone, "merge_and_unload"):
        model.backbone = model.backbone.merge_and_unload()
    if not isinstance(model.backbone, BertGLM):
        from lakerec.errors import ConfigError
        raise ConfigError(f"export supports the BERT-family GLM backbone; this model uses "
                          f"{type(model.backbone).__name__} (causal-LM export is not implemented yet)")
    return model.eval()


def export_graphs(model: RecLLM, id_model: "SASRec | IDSide", directory: Path) -> dict[str, GraphSpec]:
    """Write sequence_encoder.onnx, user_encoder.onnx and generator.onnx (fp32) into `directory`."""
    model, id_model = merged(model).cpu(), hybrid.id_side(id_model).cpu().eval()
    bb = model.backbone
    layers, heads = len(bb.layers), bb.layers[0].attention.heads
    head_dim = bb.hidden_size // heads
    b, t, p = 2, 7, 5
    seq_len = id_model.config.max_len
    ids = torch.randint(1000, 2000, (b, t))
    zeros = torch.zeros(b, t, dtype=torch.long)
    pos = torch.arange(t).expand(b, t).contiguous()
    user_slot = torch.zeros(b, bb.hidden_size)
    id_dim = id_model.score_dim                       # each SASRec member's state / K, the weighted text view's
    id_state = torch.zeros(b, id_dim)
    specs = {}

    seq = torch.randint(0, id_model.config.n_items + 1, (b, seq_len))
    specs["sequence_encoder"] = _export(SequenceEncoder(model, id_model).eval(), (seq,), directory / "sequence_encoder.onnx",
                                        [_io("id_sequence", "int64", ["batch", seq_len])],
                                        [_io("user_slot", "float32", ["batch", bb.hidden_size]),
                                         _io("id_state", "float32", ["batch", id_dim])])
    prompt_io = [_io(n, "int64", ["batch", "tokens"]) for n in PROMPT_INPUTS]
    specs["user_encoder"] = _export(
        UserEncoder(model).eval(), (ids, zeros, zeros, pos, zeros, zeros, torch.ones(b, t, dtype=torch.long),
                                    user_slot, id_state),
        directory / "user_encoder.onnx",
        prompt_io + [_io("attention_mask", "int64", ["batch", "tokens"]),
                     _io("user_slot", "float32", ["batch", bb.hidden_size]),
                     _io("id_state", "float32", ["batch", id_dim])],
        [_io("user_vector", "float32", ["batch", id_dim + model.config.dim])])
    kv_shape = ["batch", heads, "past", head_dim]
    past_io = [_io(f"past_{kind}_{i}", "float32", kv_shape) for i in range(layers) for kind in ("key", "value")]
    present_io = [_io(f"present_{kind}_{i}", "float32", ["batch", heads, "total", head_dim])
                  for i in range(layers) for kind in ("key", "value")]
    past = [torch.randn(b, heads, p, head_dim) for _ in range(2 * layers)]
    specs["generator"] = _export(
        Generator(model).eval(), (ids, zeros, zeros, pos, zeros, zeros, torch.ones(b, t, p + t, dtype=torch.long),
                                  user_slot, *past),
        directory / "generator.onnx",
        prompt_io + [_io("attention_mask", "int64", ["batch", "tokens", "total"]),
                     _io("user_slot", "float32", ["batch", bb.hidden_size])] + past_io,
        [_io("logits", "float32", ["batch", bb.word_embeddings.num_embeddings])] + present_io)
    return specs


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[dict], outputs: list[dict]) -> GraphSpec:
    dynamic = {io["name"]: {axis: dim for axis, dim in enumerate(io["shape"]) if isinstance(dim, str)}
               for io in inputs + outputs}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)     # SASRec's fused encoder kernel has no ONNX form
    try:
        _run_export(module, args, path, inputs, outputs, dynamic)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return GraphSpec(path.name, inputs, outputs)


def _run_export(module, args, path, inputs, outputs, dynamic) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer notes on shape checks inside nn.TransformerEncoder (always causal here) and on
        # advanced indexing (our indices are never negative): expected, not actionable for users.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*advanced indexing.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        # The TorchScript exporter: it handles our plain-op model with dynamic axes and needs no extra
        # packages (the torch.export-based one needs onnxscript).
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=[io["name"] for io in inputs], output_names=[io["name"] for io in outputs],
                          dynamic_axes=dynamic, do_constant_folding=True)
