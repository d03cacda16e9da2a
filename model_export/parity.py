"""Torch vs ONNX parity on a fixed set of prompts: the user vectors' largest absolute difference and
the share of users whose top-10 items are identical. Export records it in every bundle's manifest;
the tests hold fp32 to it."""
from __future__ import annotations

import numpy as np
import torch

from lakerec.model import hybrid
from lakerec.model.glm import collate
from lakerec.model.recllm import RecLLM
from lakerec.model.sasrec import SASRec
from lakerec.model.train_sasrec import left_pad
from rec_udf.glm_input import build_example, tokenize_prompt
from rec_udf.recommender import Recommender
from rec_udf.textualizer import Prompt, textualize


def parity_users(items: list[dict], template: dict, n: int = 64, seed: int = 7) -> tuple[list[Prompt], list[list[int]]]:
    """n deterministic pseudo-users: random histories (3-40 catalogue items, ratings 1-5) rendered by
    the textualizer with the model's template settings. -> (prompts, item-id sequences oldest first)."""
    rng = np.random.default_rng(seed)
    prompts, sequences = [], []
    for user in range(n):
        picks = rng.choice(len(items), size=int(rng.integers(3, min(40, len(items)) + 1)), replace=False)
        history = [{**items[i], "rating": float(rng.integers(1, 6)), "event_time": None} for i in picks]
        prompts.append(textualize({"user_id": user, "age": int(rng.integers(18, 70))}, history,
                                  max_tokens=template["max_prompt_tokens"], max_items=template["max_history_items"],
                                  spec=template["spec"]))
        sequences.append([int(items[i]["item_id"]) for i in picks])
    return prompts, sequences


@torch.no_grad()
def torch_user_vectors(model: RecLLM, id_model: "SASRec | hybrid.IDSide", tokenizer, special, item_ids, prompts,
                       sequences, batch_size: int = 32) -> np.ndarray:
    """The training code path (RecLLM.hidden + user_vectors, unified prompts, SASRec's user state for
    the USER slot, the ID side's state for the score), as the hybrid user vector
    (`lakerec.model.hybrid.user_vector`)."""
    model.eval()
    id_model.eval()
    index = {int(item): i for i, item in enumerate(item_ids)}
    out = []
    for b in range(0, len(prompts), batch_size):
        seqs = np.stack([left_pad(np.array([index[i] for i in s if i in index], dtype=np.int64),
                                  id_model.config.max_len) for s in sequences[b:b + batch_size]])
        seqs = torch.from_numpy(seqs)
        states = id_model.user_embedding(seqs)
        if model.lm_weight:
            examples = [build_example(tokenize_prompt(tokenizer, special, p, index, True), special)
                        for p in prompts[b:b + batch_size]]
            batch = collate(examples, special.pad)
            lm_user = model.user_vectors(model.hidden(batch, states), batch)
        else:           # the LM term weighs 0: no LM pass, as the runtime does (the same vector)
            lm_user = torch.zeros(len(seqs), model.config.dim)
        out.append(hybrid.user_vector(hybrid.id_side(id_model).score_state(seqs, states), lm_user, model.lm_weight,
                                      model.config.temperature).numpy())
    return np.concatenate(out)


def agreement(vectors: np.ndarray, reference: np.ndarray, recommender: Recommender, sequences, k: int = 10) -> dict:
    """How far ONNX user vectors are from the reference, and how often their top-k lists agree."""
    ref_top, _ = recommender.top_k(reference.copy(), k, sequences)
    top, _ = recommender.top_k(vectors, k, sequences)
    return {"max_abs_diff": float(np.abs(vectors - reference).max()),
            f"top{k}_identical": float(np.mean([list(a) == list(b) for a, b in zip(top, ref_top)])),
            f"top{k}_overlap": float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top, ref_top)]))}


def compare(reference: np.ndarray, recommender: Recommender, prompts, sequences, k: int = 10) -> dict:
    vectors = np.concatenate([recommender.user_vectors(prompts[b:b + 32], sequences[b:b + 32])
                              for b in range(0, len(prompts), 32)])
    return {"users": len(prompts), **agreement(vectors, reference, recommender, sequences, k)}
