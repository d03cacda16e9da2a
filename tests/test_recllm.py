"""The recommendation LM: contrastive losses on constructed inputs, a falling training loss on a
tiny batch, and the pluggable causal-LM backbone (a tiny random Llama built in-process)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lakerec.model.glm import collate
from lakerec.model.losses import alignment_loss
from lakerec.model.recllm import RecLLM, RecLLMConfig, attach_lora
from rec_udf.glm_input import SpecialTokens, TokenizedPrompt, build_example, load_tokenizer


def unit(x):
    return F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)


def test_alignment_loss_prefers_matching_id_and_text_vectors_and_is_symmetric():
    text = unit(torch.randn(6, 16, generator=torch.Generator().manual_seed(0)))
    matched = alignment_loss(text + 0.0, text, temperature=0.1)
    mismatched = alignment_loss(text.roll(1, dims=0), text, temperature=0.1)
    assert matched < 0.1 < mismatched
    a, b = unit(torch.randn(5, 8)), unit(torch.randn(5, 8))
    assert torch.isclose(alignment_loss(a, b, 0.2), alignment_loss(b, a, 0.2))


@pytest.fixture(scope="module")
def tokenizer():
    from lakerec.model.backbone import default_backbone_path
    return load_tokenizer(default_backbone_path())


def tiny_batch(special, n_items=5):
    examples = []
    for k in range(4):
        prompt = TokenizedPrompt([1000 + k, 2000, 2001, special.item_slot, 1010], [0, 1, 1, 1, 0], [0, 1, 2, 3, 0],
                                 [0, 0, 0, 1, 0], [0, 0, 0, k % n_items, 0], 1)
        examples.append(build_example(prompt, special, masked=[(1, 4)] if k % 2 else [],
                                      target_ids=[3000 + k, 3100]))
    return collate(examples, special.pad)


def train_steps(model, batch, steps=25, precision="fp32"):
    from lakerec.model.device import autocast
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    model.train()
    for _ in range(steps):
        with autocast(precision, "cpu"):
            hidden = model.hidden(batch, torch.zeros(len(batch.ids), model.config.id_dim))
            loss = model.lm_loss(hidden, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_minilm_lora_model_trains_only_adapters_and_heads_and_its_loss_falls(tokenizer):
    from lakerec.model.backbone import load_backbone
    torch.manual_seed(0)
    special = SpecialTokens.resolve(tokenizer)
    backbone, _ = load_backbone("minilm")
    config = RecLLMConfig()
    model = RecLLM(attach_lora(backbone, config), config, special, n_items=5)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable)
    assert not any(n.endswith("query.base_layer.weight") or "word_embeddings" in n for n in trainable)
    frozen_before = model.backbone.get_base_model().layers[0].attention.query.base_layer.weight.clone()
    losses = train_steps(model, tiny_batch(special))
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    assert torch.equal(frozen_before, model.backbone.get_base_model().layers[0].attention.query.base_layer.weight)


def test_mixed_precision_training_multiplies_in_bf16_keeps_fp32_weights_and_its_loss_falls(tokenizer):
    """llm_train.precision bf16 (the default where the CPU has AMX / AVX512-BF16): the forward pass
    runs its matrix products in bf16, the trained weights and their gradients stay fp32."""
    from lakerec.model.backbone import load_backbone
    from lakerec.model.device import autocast, native_bf16, resolved_precision
    assert resolved_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    assert resolved_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="fp64"):
        resolved_precision("fp64", "cpu")
    torch.manual_seed(0)
    special = SpecialTokens.resolve(tokenizer)
    backbone, _ = load_backbone("minilm")
    config = RecLLMConfig()
    model = RecLLM(attach_lora(backbone, config), config, special, n_items=5)
    batch = tiny_batch(special)
    seen, adapter_inputs = [], []
    layer = model.backbone.get_base_model().layers[0]
    hooks = [layer.attention.query.register_forward_hook(lambda module, args, out: seen.append(out.dtype)),
             # the FFN's second adapter reads the bf16 GELU output as it is (no bf16 -> fp32 -> bf16 round trip)
             layer.ffn_out.lora_A["default"].register_forward_pre_hook(
                 lambda module, args: adapter_inputs.append(args[0].dtype))]
    model.eval()                                         # no dropout: the two passes are comparable
    with torch.no_grad(), autocast("bf16", "cpu"):
        mixed = model.hidden(batch, torch.zeros(len(batch.ids), config.id_dim))
    with torch.no_grad(), autocast("fp32", "cpu"):
        full = model.hidden(batch, torch.zeros(len(batch.ids), config.id_dim))
    for hook in hooks:
        hook.remove()
    assert seen == [torch.bfloat16, torch.float32]
    assert adapter_inputs == [torch.bfloat16, torch.float32]
    # same hidden states up to bf16 rounding (8 bits of mantissa through six layers)
    assert torch.allclose(mixed.float(), full, atol=0.1, rtol=0.05)
    losses = train_steps(model, batch, precision="bf16")
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    trained = [p for p in model.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in trained if p.grad is not None)


def test_attention_under_cpu_autocast_runs_in_fp32_and_equals_plain_attention():
    """bert_glm.attention leaves bf16 autocast on the CPU (its bf16 flash kernel is slower than fp32,
    bench/attention_precision.py): same result as fp32 attention, gradients flow back in the inputs' dtype."""
    from lakerec.model.bert_glm import attention
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 12, 7, 32, requires_grad=True) for _ in range(3))
    bias = torch.zeros(2, 1, 7, 7).masked_fill(torch.rand(2, 1, 7, 7) > 0.7, torch.finfo(torch.float32).min)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        qb, kb, vb = (x.to(torch.bfloat16) for x in (q, k, v))
        out = attention(qb, kb, vb, bias.to(torch.bfloat16))
        assert out.dtype == torch.float32
        out.sum().backward()
    assert torch.allclose(out, reference, atol=0.05)
    assert q.grad is not None and q.grad.dtype == torch.float32
    assert torch.equal(attention(q, k, v, bias), reference)          # outside autocast: plain attention


def test_a_tiny_random_llama_plugs_in_as_backbone(tokenizer, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM
    from lakerec.model.backbone import load_backbone
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text(tokenizer.to_str())
    backbone, tokenizer_dir = load_backbone(str(tmp_path))
    assert backbone.kind == "hf_causal" and tokenizer_dir == tmp_path
    special = SpecialTokens.resolve(load_tokenizer(tmp_path))
    llm_config = RecLLMConfig(backbone=str(tmp_path))
    model = RecLLM(attach_lora(backbone, llm_config), llm_config, special, n_items=5)
    batch = tiny_batch(special)
    losses = train_steps(model, batch, steps=30)
    assert np.mean(losses[-3:]) < 0.95 * np.mean(losses[:3])   # LoRA only: the random LM head stays frozen
    model.eval()
    prompt_only = collate([build_example(TokenizedPrompt([1000, 2000], [0, 1], [0, 1], [0, 0], [0, 0], 1), special)],
                          special.pad)
    tokens, first = model.generate(prompt_only, torch.zeros(1, llm_config.id_dim), max_new_tokens=4)
    assert first.shape == (1, tokenizer.get_vocab_size()) and len(tokens[0]) <= 4
    users = model.user_vectors(model.hidden(prompt_only, torch.zeros(1, llm_config.id_dim)), prompt_only)
    assert users.shape == (1, llm_config.dim)
    assert torch.allclose(users.norm(dim=-1), torch.ones(1))


def test_backbone_computing_one_position_in_the_last_layer_equals_the_full_pass_there():
    """Inference graphs ask the BERT backbone for one position per sequence (the blank, or the last
    token); the pruned last layer must give the same hidden state and the same key/value cache."""
    from lakerec.model.bert_glm import BertConfig, BertGLM
    torch.manual_seed(0)
    model = BertGLM(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=32)).eval()
    b, t = 3, 9
    x, positions = torch.randn(b, t, 32), torch.arange(t).expand(b, t)
    key_mask = torch.ones(b, t)
    key_mask[1, 6:] = 0
    causal = torch.tril(torch.ones(t, t)).expand(b, t, t)
    blank = torch.tensor([2, 5, 8])
    with torch.no_grad():
        for bias in (((1 - key_mask) * -1e4)[:, None, None, :], ((1 - causal) * -1e4)[:, None]):
            full, full_cache = model(x, positions, bias)
            at_blank, _ = model(x, positions, bias, only=blank)
            last, last_cache = model(x, positions, bias, only="last")
            assert at_blank.shape == (b, 1, 32)
            assert torch.allclose(at_blank[:, 0], full[torch.arange(b), blank], atol=1e-5)
            assert torch.allclose(last[:, 0], full[:, -1], atol=1e-5)
            assert all(torch.equal(k1, k2) and torch.equal(v1, v2) for (k1, v1), (k2, v2) in zip(full_cache, last_cache))
