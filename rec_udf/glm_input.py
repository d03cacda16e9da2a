"""The model's input side that scoring executors need too, in pure Python (no torch, no numpy):
entity-aware tokenization of the textualizer's prompt and RecSysLLM's two-part GLM layout.

Part A is the prompt with some spans replaced by one [MASK] each and a final [MASK] -- the blank
the task answer fills (and whose hidden state is the user embedding). Part B holds the masked
spans, in chronological order (RecSysLLM keeps the order instead of shuffling), each opened by [S];
the model predicts each span token by token and closes it with [E].

Positions are 2D plus the backbone's own: `pos` is the token's index in part A (part B tokens take
the position of their [MASK], as in GLM), `inter` is the entity index (1-based, chronological; 0 for
non-entity text; the answer blank takes the index after the last entity), `intra` is the index
inside the entity or span. At inference the same rule runs step by step (`intra` = number of tokens
generated so far), so spans of unknown length need no precomputed positions.

Training (`lakerec.model.glm`) and the ONNX runtime (`rec_udf.prompt_inputs`) both build inputs here, so a
prompt becomes the same token ids and positions in both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rec_udf.textualizer import Prompt

NORMAL, ITEM_SLOT, USER_SLOT = 0, 1, 2
IGNORE = -100
MAX_INTER = 256
MAX_INTRA = 64


@dataclass(frozen=True)
class SpecialTokens:
    pad: int
    mask: int
    span_start: int
    span_end: int
    item_slot: int
    user_slot: int
    cls: int | None
    sep: int | None

    # Preferred names, looked up in the tokenizer's vocabulary (BERT vocabularies have all of them).
    NAMES = {"pad": "[PAD]", "mask": "[MASK]", "span_start": "[unused1]", "span_end": "[unused2]",
             "item_slot": "[unused3]", "user_slot": "[unused4]", "cls": "[CLS]", "sep": "[SEP]"}

    @classmethod
    def resolve(cls, tokenizer) -> "SpecialTokens":
        vocab = tokenizer.get_vocab()
        missing = [name for key, name in cls.NAMES.items() if key not in ("cls", "sep") and name not in vocab]
        if missing:
            tokenizer.add_special_tokens(missing)
            vocab = tokenizer.get_vocab()
        return cls(**{key: vocab.get(name) for key, name in cls.NAMES.items()})


def load_tokenizer(directory: Path):
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


@dataclass
class TokenizedPrompt:
    """Token ids of a prompt with, per token, its entity (1-based, 0 = none), its index inside the
    entity, and its slot kind (NORMAL text, ITEM_SLOT for a projected ID embedding, USER_SLOT for the
    ID model's sequence representation) with the catalogue item index for ITEM_SLOT."""
    ids: list[int]
    entity: list[int]
    intra: list[int]
    slot: list[int]
    item: list[int]
    n_entities: int

    def entity_ranges(self) -> list[tuple[int, int]]:
        """[start, end) token range of each entity, in entity order."""
        ranges: dict[int, list[int]] = {}
        for t, e in enumerate(self.entity):
            if e:
                ranges.setdefault(e, [t, t + 1])[1] = t + 1
        return [tuple(ranges[e]) for e in sorted(ranges)]


def _encode(tokenizer, text: str):
    return tokenizer.encode(text, add_special_tokens=False)


def tokenize_prompt(tokenizer, special: SpecialTokens, prompt: Prompt, item_index: dict[int, int] | None,
                    unified: bool) -> TokenizedPrompt:
    """Tokenize the textualizer's prompt, map tokens to its entity spans by character offsets and,
    for unified prompts (RSLLM), put one ITEM_SLOT token right after each entity's text and one
    USER_SLOT token at the end."""
    encoding = _encode(tokenizer, prompt.text)
    spans = prompt.entities
    out = TokenizedPrompt([], [], [], [], [], len(spans))
    span_i, counts = 0, {}
    for token_id, (start, _end) in zip(encoding.ids, encoding.offsets):
        while span_i < len(spans) and start >= spans[span_i].end:
            if unified:
                _close_entity(out, special, span_i + 1, counts, item_index, spans[span_i].item_id)
            span_i += 1
        in_entity = span_i < len(spans) and start >= spans[span_i].start
        entity = span_i + 1 if in_entity else 0
        counts[entity] = counts.get(entity, 0) + 1
        out.ids.append(token_id)
        out.entity.append(entity)
        out.intra.append(counts[entity] if entity else 0)
        out.slot.append(NORMAL)
        out.item.append(0)
    while span_i < len(spans):
        if unified:
            _close_entity(out, special, span_i + 1, counts, item_index, spans[span_i].item_id)
        span_i += 1
    if unified:
        _append(out, special.user_slot, 0, 0, USER_SLOT, 0)
    return out


def _close_entity(out, special, entity, counts, item_index, item_id):
    index = item_index.get(int(item_id))
    if index is None:   # an item the model was not trained on (new since training): its text alone
        return
    counts[entity] = counts.get(entity, 0) + 1
    _append(out, special.item_slot, entity, counts[entity], ITEM_SLOT, index)


def _append(out: TokenizedPrompt, token_id, entity, intra, slot, item):
    out.ids.append(token_id)
    out.entity.append(entity)
    out.intra.append(intra)
    out.slot.append(slot)
    out.item.append(item)


def tokenize_item(tokenizer, special: SpecialTokens, text: str, item: int, unified: bool) -> TokenizedPrompt:
    """An item on its own (for the item matrix): its text as entity 1, plus its ITEM_SLOT when unified."""
    ids = _encode(tokenizer, text).ids
    out = TokenizedPrompt(list(ids), [1] * len(ids), list(range(1, len(ids) + 1)), [NORMAL] * len(ids),
                          [0] * len(ids), 1)
    if unified:
        _append(out, special.item_slot, 1, len(ids) + 1, ITEM_SLOT, item)
    return out


# --- the GLM layout ----------------------------------------------------------------------------

@dataclass
class GLMExample:
    ids: list[int]
    slot: list[int]
    item: list[int]
    pos: list[int]
    inter: list[int]
    intra: list[int]
    labels: list[int]
    part_a: int                   # number of part-A tokens
    blank: int                    # index of the answer [MASK] in part A
    user_item: int = -1           # for USER_SLOT: the user's row in the batch's ID-model states
    extras: dict = field(default_factory=dict)


def build_example(prompt: TokenizedPrompt, special: SpecialTokens, *, masked: Sequence[tuple[int, int]] = (),
                  suffix_ids: Sequence[int] = (), target_ids: Sequence[int] | None = None) -> GLMExample:
    """Part A = [CLS] prompt-with-masks suffix [MASK] [SEP]; part B = the masked spans in order, then
    the target span (if any). Labels are set on part B only (next token, [E] closing each span);
    ID slots inside masked spans are embedded in part B but never predicted."""
    ids, slot, item, pos, inter, intra = [], [], [], [], [], []

    def add(token, s=NORMAL, it=0, e=0, k=0):
        ids.append(token); slot.append(s); item.append(it); pos.append(len(pos)); inter.append(e); intra.append(k)

    if special.cls is not None:
        add(special.cls)
    span_masks: list[int] = []
    cursor = 0
    for start, end in list(masked) + [(len(prompt.ids), len(prompt.ids))]:
        for t in range(cursor, start):
            add(prompt.ids[t], prompt.slot[t], prompt.item[t], prompt.entity[t], prompt.intra[t])
        if start < end:
            span_masks.append(len(ids))
            add(special.mask, e=prompt.entity[start])
        cursor = end
    for token in suffix_ids:
        add(token)
    blank = len(ids)
    add(special.mask, e=min(prompt.n_entities + 1, MAX_INTER - 1))
    if special.sep is not None:
        add(special.sep)
    part_a = len(ids)

    labels = [IGNORE] * part_a
    for mask_at, (start, end) in zip(span_masks, masked):
        tokens = [(prompt.ids[t], prompt.slot[t], prompt.item[t], prompt.entity[t]) for t in range(start, end)]
        _add_span(ids, slot, item, pos, inter, intra, labels, special, mask_at, tokens)
    if target_ids is not None:
        tokens = [(t, NORMAL, 0, inter[blank]) for t in target_ids]
        _add_span(ids, slot, item, pos, inter, intra, labels, special, blank, tokens)
    return GLMExample(ids, slot, item, pos, inter, intra, labels, part_a, blank)


def _add_span(ids, slot, item, pos, inter, intra, labels, special, mask_at, tokens):
    """[S] t1 .. tn with labels t1 .. tn [E]; ID slots get no label (they are not text)."""
    sequence = [(special.span_start, NORMAL, 0, inter[mask_at])] + list(tokens)
    for k, (token, s, it, e) in enumerate(sequence):
        ids.append(token); slot.append(s); item.append(it); pos.append(pos[mask_at]); inter.append(e)
        intra.append(min(k + 1, MAX_INTRA - 1))
        if k + 1 < len(sequence):
            nxt = sequence[k + 1]
            labels.append(nxt[0] if nxt[1] == NORMAL else IGNORE)
        else:
            labels.append(special.span_end)
