"""RecSysLLM input side: entity-aware masking, 2D positions, the GLM attention mask, and the
BERT re-implementation's parity with transformers."""
import numpy as np
import pytest
import torch

from lakerec.model.glm import choose_masked_entities, collate, mask_token_ranges
from rec_udf.glm_input import (IGNORE, ITEM_SLOT, USER_SLOT, SpecialTokens, TokenizedPrompt, build_example,
                               load_tokenizer, tokenize_prompt)
from rec_udf.textualizer import textualize

SPECIAL = SpecialTokens(pad=0, mask=1, span_start=2, span_end=3, item_slot=4, user_slot=5, cls=None, sep=None)


def test_masked_spans_never_cut_an_entity():
    rng = np.random.default_rng(0)
    for n_entities in (1, 2, 5, 17):
        entity = [0, 0]
        for e in range(1, n_entities + 1):
            entity += [e] * int(rng.integers(1, 6)) + [0]      # entity tokens, then a separator
        prompt = TokenizedPrompt(list(range(10, 10 + len(entity))), entity, [0] * len(entity),
                                 [0] * len(entity), [0] * len(entity), n_entities)
        starts = {s for s, _ in prompt.entity_ranges()}
        ends = {e for _, e in prompt.entity_ranges()}
        for level in ("entity", "sentence", "document"):
            for _ in range(50):
                runs = choose_masked_entities(n_entities, level, rng)
                ranges = mask_token_ranges(prompt, runs)
                assert ranges == sorted(ranges)
                for (start, end), (next_start, _) in zip(ranges, ranges[1:]):
                    assert end <= next_start                    # no overlap, chronological
                for start, end in ranges:
                    assert start in starts and end in ends      # boundaries are entity boundaries
                    inside = set(prompt.entity[start:end]) - {0}
                    for e in inside:                            # every touched entity is wholly inside
                        lo, hi = prompt.entity_ranges()[e - 1]
                        assert start <= lo and hi <= end


def test_2d_positions_labels_and_attention_mask_match_a_hand_built_example():
    prompt = TokenizedPrompt(ids=[10, 11, 12, 13, 14], entity=[0, 1, 1, 0, 2], intra=[0, 1, 2, 0, 1],
                             slot=[0] * 5, item=[0] * 5, n_entities=2)
    example = build_example(prompt, SPECIAL, masked=[(1, 3)], target_ids=[20, 21])
    M, S, E = SPECIAL.mask, SPECIAL.span_start, SPECIAL.span_end
    assert example.ids == [10, M, 13, 14, M, S, 11, 12, S, 20, 21]
    assert example.pos == [0, 1, 2, 3, 4, 1, 1, 1, 4, 4, 4]        # part B takes its [MASK]'s position
    assert example.inter == [0, 1, 0, 2, 3, 1, 1, 1, 3, 3, 3]      # the answer blank is entity n+1
    assert example.intra == [0, 0, 0, 1, 0, 1, 2, 3, 1, 2, 3]
    assert example.labels == [IGNORE] * 5 + [11, 12, E, 20, 21, E]
    assert example.part_a == 5 and example.blank == 4

    batch = collate([example], SPECIAL.pad)
    allowed = batch.allowed[0].numpy()
    expected = np.zeros((11, 11), dtype=bool)
    expected[:, :5] = True                                          # everyone sees part A
    for row in range(5, 11):
        expected[row, 5:row + 1] = True                             # part B: causal within part B
    np.testing.assert_array_equal(allowed, expected)


def test_collate_pads_part_a_and_part_b_separately():
    short = TokenizedPrompt([10], [1], [1], [0], [0], 1)
    long = TokenizedPrompt([10, 11, 12], [1, 1, 0], [1, 2, 0], [0] * 3, [0] * 3, 1)
    batch = collate([build_example(short, SPECIAL, target_ids=[7]),
                     build_example(long, SPECIAL, target_ids=[7, 8, 9])], SPECIAL.pad)
    assert batch.ids.shape == (2, 4 + 4)                            # A: 3 + blank; B: [S] + 3
    assert batch.part_a[0].tolist() == [True, True, False, False] + [False] * 4
    assert not batch.allowed[0, :, 2:4].any()                       # padding is never attended
    assert batch.blank.tolist() == [1, 3]


@pytest.fixture(scope="module")
def tokenizer():
    from lakerec.model.backbone import default_backbone_path
    return load_tokenizer(default_backbone_path())


def test_unified_prompt_puts_an_id_slot_after_each_entity_and_a_user_slot_at_the_end(tokenizer):
    special = SpecialTokens.resolve(tokenizer)
    history = [{"item_id": i, "title": f"Film {i}", "release_year": 1990, "genres": ["Drama"], "rating": 4,
                "event_time": i} for i in (7, 9)]
    prompt = textualize({"user_id": 1, "age": 30}, history, max_tokens=100)
    text_only = tokenize_prompt(tokenizer, special, prompt, {7: 0, 9: 1}, unified=False)
    unified = tokenize_prompt(tokenizer, special, prompt, {7: 0, 9: 1}, unified=True)
    assert len(unified.ids) == len(text_only.ids) + 3
    slots = [(t, e, i) for t, (s, e, i) in enumerate(zip(unified.slot, unified.entity, unified.item)) if s == ITEM_SLOT]
    ranges = unified.entity_ranges()
    assert [(e, i) for _, e, i in slots] == [(1, 0), (2, 1)]
    assert [t + 1 for t, _, _ in slots] == [hi for _, hi in ranges]  # the slot closes its entity
    assert unified.slot[-1] == USER_SLOT
    # the entity tokens decode back to the entity text
    first = text_only.entity_ranges()[0]
    assert tokenizer.decode(text_only.ids[first[0]:first[1]]).replace(" ", "") == \
        prompt.text[prompt.entities[0].start:prompt.entities[0].end].lower().replace(" ", "")


def test_bert_glm_matches_transformers_bert(tokenizer):
    from transformers import BertModel
    from lakerec.model.backbone import bias_from_allowed, default_backbone_path
    from lakerec.model.bert_glm import BertGLM
    ours = BertGLM.from_pretrained(default_backbone_path()).eval()
    theirs = BertModel.from_pretrained(str(default_backbone_path())).eval()
    ids = torch.tensor([tokenizer.encode("A user who watched Toy Story and Heat.").ids])
    n = ids.shape[1]
    with torch.no_grad():
        hidden, _ = ours(ours.embed_tokens(ids), torch.arange(n)[None], bias_from_allowed(torch.ones(1, n, n, dtype=torch.bool)))
        reference = theirs(input_ids=ids).last_hidden_state
    assert torch.allclose(hidden, reference, atol=1e-4)


def test_kv_cache_generation_equals_recomputing_the_whole_sequence(tokenizer):
    """One generation step with the cache gives the same hidden state as a full GLM forward of
    part A + the generated span (the attention mask and positions agree)."""
    from lakerec.model.backbone import bias_from_allowed, default_backbone_path
    from lakerec.model.bert_glm import BertGLM
    backbone = BertGLM.from_pretrained(default_backbone_path()).eval()
    prompt = TokenizedPrompt(tokenizer.encode("user likes heat", add_special_tokens=False).ids, [0, 1, 1], [0, 1, 2],
                             [0] * 3, [0] * 3, 1)
    special = SpecialTokens.resolve(tokenizer)
    full = collate([build_example(prompt, special, target_ids=[2000, 2001])], special.pad)
    part_a = collate([build_example(prompt, special)], special.pad)
    with torch.no_grad():
        reference, _ = backbone(backbone.embed_tokens(full.ids), full.pos, bias_from_allowed(full.allowed))
        _, past = backbone(backbone.embed_tokens(part_a.ids), part_a.pos, bias_from_allowed(part_a.allowed))
        seen = part_a.part_a.clone()
        for step, token in enumerate([special.span_start, 2000, 2001]):
            seen = torch.cat([seen, torch.ones(1, 1, dtype=torch.bool)], dim=1)
            column = part_a.ids.shape[1] + step
            hidden, past = backbone(backbone.embed_tokens(torch.tensor([[token]])), full.pos[:, column:column + 1],
                                    bias_from_allowed(seen.unsqueeze(1)), past)
            assert torch.allclose(hidden[0, -1], reference[0, column], atol=1e-4)
