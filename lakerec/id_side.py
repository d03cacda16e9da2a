"""The ID side of a training run, for one seed: the ID model (SASRec, from the champion's weights on
a warm start, and when the profile asks for it partners from other seeds: a seed ensemble) and,
when the profile asks for it, the text view mixed in at a weight chosen out of fold. The LM
(`lakerec.training`) is trained on top of it and mixed with its scores."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lakerec import logs
from lakerec.eval.metrics import ranking_metrics
from lakerec.eval.protocol import SplitData
from lakerec.eval.recorder import Evaluated, Recorder, evaluated, score_matrix
from lakerec.eval.split import TEST, VALID
from lakerec.model import hybrid
from lakerec.model.device import device
from lakerec.model.hybrid import IDSide
from lakerec.model.sasrec import SASRec, SASRecConfig
from lakerec.model.train_sasrec import FitResult, TrainConfig, fit, scorer as sasrec_scorer
from lakerec.profiles import Profile

log = logs.get(__name__).info


def sequential_scores(model: SASRec, split: SplitData, on: str, users: np.ndarray) -> Evaluated:
    """A SASRec-family model's full-catalogue scores and ranks for `users` on the `on` split."""
    return evaluated(score_matrix(sasrec_scorer(model, split, on, device()), users), users, split, on)


def frozen(model: SASRec) -> SASRec:
    """The trained model in eval mode with no gradients: the LM reads it, nothing trains it further."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def train_id_model(split: SplitData, profile: Profile, seed: int, warm: SASRec | None,
                   warm_items: np.ndarray | None, name: str = "sasrec") -> FitResult:
    """One SASRec of the ID model, from `warm`'s weights (item rows carried over by item id) when given."""
    config = SASRecConfig(**{**profile.sasrec.__dict__, "n_items": split.n_items})
    train_config = TrainConfig(**{**profile.sasrec_train.__dict__, "seed": seed})
    init = None
    if warm is not None:
        init = warm_start_state(warm, warm_items, split.item_ids, config)
    return fit(split, config, train_config, device(), init_state=init, name=name)


def warm_start_state(old: SASRec, old_items: np.ndarray, new_items: np.ndarray, config: SASRecConfig) -> dict:
    """The champion's ID-model weights, item rows carried over by item id (new items start fresh)."""
    fresh = SASRec(config).state_dict()
    state = {k: v.clone() for k, v in old.state_dict().items()}
    if old.config.dim != config.dim or old.config.max_len != config.max_len:
        return fresh
    rows = fresh["item_emb.weight"].clone()
    where = {int(item): i for i, item in enumerate(old_items)}
    for i, item in enumerate(new_items):
        if int(item) in where:
            rows[i + 1] = state["item_emb.weight"][where[int(item)] + 1]
    state["item_emb.weight"] = rows
    return state


def train_text_view(split: SplitData, profile: Profile, seed: int, features: torch.Tensor) -> SASRec:
    """The text view (LLM-ESR's semantic view): SASRec's network and training over item embeddings
    that are an adapter on the LM backbone's frozen text features of each item."""
    config = SASRecConfig(**{**profile.sasrec.__dict__, "n_items": split.n_items, "text_dim": int(features.shape[1])})
    train_config = TrainConfig(**{**profile.sasrec_train.__dict__, "seed": seed})
    return frozen(fit(split, config, train_config, device(), text_features=features.detach().cpu(),
                      name="text_view").model)


def partner_seed(seed: int, member: int) -> int:
    """The training seed of the ID model's member `member` (1, 2, ...) for the run's `seed`: apart
    from every run seed a profile would list."""
    return seed + 1000 * member


def add_partners(split: SplitData, profile: Profile, seed: int, id_model: SASRec, sas: dict[str, Evaluated],
                 users: dict[str, np.ndarray], rec: Recorder, warm_partners: Sequence[SASRec] = (),
                 warm_items: np.ndarray | None = None) -> tuple[IDSide, dict, dict]:
    """The ID model: SASRec (`id_model`, its scores per split `sas`) and its other
    `profile.id_members - 1` members, SASRec trained from other seeds (each from the warm-start
    version's member of the same rank when it has one). Records the ID model's rows as `id_model`
    (with one member they are SASRec's). Returns the ID side, its scores per split (the members'
    mean) and its validation and test metrics."""
    partners = []
    for member in range(1, profile.id_members):
        warm = warm_partners[member - 1] if member - 1 < len(warm_partners) else None
        partners.append(frozen(train_id_model(split, profile, partner_seed(seed, member), warm, warm_items,
                                              name=f"sasrec_member{member}").model))
    ensemble = {on: evaluated(sum([sas[on].scores] + [sequential_scores(p, split, on, users[on]).scores
                                                      for p in partners]) / profile.id_members,
                              users[on], split, on) if partners else sas[on] for on in (VALID, TEST)}
    metrics = {on: rec.ranking("id_model", seed, on, ensemble[on]) for on in (VALID, TEST)}
    if partners:
        log(f"[train] seed {seed}: ID model (SASRec x {profile.id_members} seeds) validation ndcg@10 "
            f"{metrics[VALID]['ndcg@10']:.4f}, SASRec alone {ranking_metrics(sas[VALID].ranks)['ndcg@10']:.4f}")
    return IDSide(id_model, partners=partners), {on: ensemble[on].scores for on in (VALID, TEST)}, metrics


def add_text_view(split: SplitData, profile: Profile, seed: int, features: torch.Tensor, side: IDSide,
                  id_scores: dict[str, np.ndarray], users: dict[str, np.ndarray],
                  rec: Recorder) -> tuple[IDSide, dict, dict]:
    """Train the text view on `features`, record its rows and those of the ID model + text view, and
    mix it into the ID side at the weight `hybrid.choose_weight` picks out of fold at the profile's
    confidence. `id_scores`: the ID model's scores per split. Returns the ID side, its scores per
    split and its out-of-fold validation metrics (the served weight's own validation numbers are
    in-sample)."""
    text_view = train_text_view(split, profile, seed, features)
    tv = {on: sequential_scores(text_view, split, on, users[on]) for on in (VALID, TEST)}
    rec.ranking("text_view", seed, VALID, tv[VALID])
    rec.ranking("text_view", seed, TEST, tv[TEST])
    text_mix = hybrid.choose_weight(id_scores[VALID], tv[VALID].scores, users[VALID], split, VALID,
                                    min_confidence=profile.mix_confidence)
    side = IDSide(side.sasrec, text_view, text_mix.weight, side.partners)
    mixed = {on: hybrid.mix(id_scores[on], tv[on].scores, side.text_weight) for on in (VALID, TEST)}
    rec.add("id_model+text_view", seed, VALID, text_mix.honest)
    rec.ranking("id_model+text_view", seed, TEST, evaluated(mixed[TEST], users[TEST], split, TEST))
    rec.add("hybrid", seed, VALID, {"text_confidence": text_mix.confidence}, family="mix")
    alone = text_mix.table["0"]            # the grid's weight-0 point: the ID model alone, all users
    log(f"[train] seed {seed}: ID model + text view {text_mix.honest['ndcg@10']:.4f} on validation out "
        f"of fold (the cross-fitted mix beat the ID model alone in {text_mix.confidence:.0%} of resamples; "
        f"weight served {text_mix.weight}), ID model {alone:.4f}")
    return side, mixed, text_mix.honest
