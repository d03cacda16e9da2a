"""The hybrid score (lakerec.model.hybrid): SASRec + lm_weight * the LM term. At initialisation it is
SASRec exactly; the weight is chosen on validation with 0 in the grid, so the LM term is used only
where it helps."""
import numpy as np
import torch

from lakerec.eval.protocol import SplitData
from lakerec.eval.split import VALID
from lakerec.model import hybrid
from lakerec.model.sasrec import SASRec, SASRecConfig


def small_split(n_users=40, n_items=30, seed=0) -> SplitData:
    rng = np.random.default_rng(seed)
    train = {u: rng.choice(n_items, size=5, replace=False) for u in range(n_users)}
    valid = {u: int(next(i for i in rng.permutation(n_items) if i not in train[u])) for u in range(n_users)}
    return SplitData(np.arange(1000, 1000 + n_items), train, valid, dict(valid))


def on_targets(split: SplitData, users, value: float) -> np.ndarray:
    """Scores that are `value` on each user's validation item and 0 elsewhere."""
    scores = np.zeros((len(users), split.n_items))
    scores[np.arange(len(users)), [split.valid[u] for u in users]] = value
    return scores


def test_at_initialisation_the_hybrid_is_sasrec_exactly():
    """A freshly built model (LoRA, random heads) has lm_weight 0: the exported one-dot-product score
    [state ; 0 * v] . [e ; t] equals SASRec's full-sort scores, whatever the LM term says."""
    from lakerec.model.recllm import RecLLMConfig
    from lakerec.model.store import build_model
    torch.manual_seed(0)
    n_items = 12
    id_model = SASRec(SASRecConfig(n_items=n_items, max_len=8, dim=16, layers=1, heads=2, dropout=0.0)).eval()
    model, _, _, _ = build_model(RecLLMConfig(dim=16, id_dim=16), n_items, id_model)
    assert model.lm_weight == 0.0
    seqs = torch.randint(1, n_items + 1, (5, 8))
    state = id_model.user_embedding(seqs)
    lm_user = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)      # any LM output
    text_items = torch.nn.functional.normalize(torch.randn(n_items, 16), dim=-1)
    vector = hybrid.user_vector(state, lm_user, model.lm_weight, model.config.temperature)
    matrix = hybrid.item_matrix(id_model.item_embeddings().numpy(), text_items.numpy())
    got, want = vector.numpy() @ matrix.T, id_model.full_sort_scores(seqs).numpy()
    assert np.allclose(got, want, rtol=0, atol=1e-6)          # float summation order only
    assert np.array_equal(np.argsort(-got, axis=1), np.argsort(-want, axis=1))


def test_the_concatenated_vectors_give_the_two_term_score():
    rng = np.random.default_rng(1)
    state, e = rng.normal(size=(4, 8)), rng.normal(size=(20, 8))
    v, t = rng.normal(size=(4, 6)), rng.normal(size=(20, 6))
    weight, temperature = 0.3, 0.07
    vector = hybrid.user_vector(torch.tensor(state), torch.tensor(v), weight, temperature).numpy()
    got = vector @ hybrid.item_matrix(e, t).T
    assert np.allclose(got, hybrid.mix(state @ e.T, v @ t.T / temperature, weight), atol=1e-4)


def test_weight_is_zero_when_the_lm_term_does_not_help_and_positive_when_it_does():
    split = small_split()
    users = np.array(sorted(split.valid))
    rng = np.random.default_rng(2)
    id_scores = rng.normal(size=(len(users), split.n_items))
    # an LM term that points away from every target: any weight above 0 can only hurt or tie
    harmful = on_targets(split, users, -10.0)
    chosen = hybrid.choose_weight(id_scores, harmful, users, split, VALID)
    assert chosen.weight == 0.0 and chosen.table["0"] == max(chosen.table.values())
    # an LM term that knows the targets: the mix uses it, and helps out of fold too
    helpful = -harmful
    chosen = hybrid.choose_weight(id_scores, helpful, users, split, VALID)
    assert chosen.weight > 0 and chosen.table[hybrid.grid_key([chosen.weight])] > chosen.table["0"]
    assert chosen.honest["ndcg@10"] > chosen.table["0"]


def test_a_weight_that_wins_only_in_sample_is_not_served():
    """Noise that happens to favour a weight on some users but not on held-out ones: the grid's best
    weight on all users may be positive, but the out-of-fold check sends the product back to SASRec
    unless the mix also wins on users that did not choose it."""
    split = small_split(n_users=200, n_items=60, seed=3)
    users = np.array(sorted(split.valid))
    rng = np.random.default_rng(4)
    id_scores = rng.normal(size=(len(users), split.n_items))
    served = []
    for trial in range(20):
        noise = rng.normal(size=id_scores.shape)
        chosen = hybrid.choose_weight(id_scores, noise, users, split, VALID)
        served.append(chosen.weight > 0)
        if chosen.weight > 0:                    # kept only when it also won out of fold
            assert chosen.honest["ndcg@10"] > chosen.table["0"]
        else:
            assert chosen.honest["ndcg@10"] == chosen.table["0"]
    in_sample = [hybrid.choose_weight(id_scores, rng.normal(size=id_scores.shape), users, split,
                                      VALID).in_sample_weight > 0 for _ in range(10)]
    assert sum(served) / len(served) < sum(in_sample) / len(in_sample) or not any(in_sample)


def test_the_id_side_with_a_text_view_is_one_dot_product_equal_to_the_weighted_sum():
    """IDSide.score_state . score_items = SASRec's logits + text_weight * the text view's; a weight of
    0 drops the text view (the ID side is SASRec alone, same width)."""
    torch.manual_seed(0)
    n_items, text_dim = 12, 24
    sasrec = SASRec(SASRecConfig(n_items=n_items, max_len=8, dim=16, layers=1, heads=2, dropout=0.0)).eval()
    text_view = SASRec(SASRecConfig(n_items=n_items, max_len=8, dim=16, layers=1, heads=2, dropout=0.0,
                                    text_dim=text_dim)).eval()
    features = torch.randn(n_items, text_dim)
    text_view.set_text_features(features)
    seqs = torch.randint(0, n_items + 1, (5, 8))
    side = hybrid.IDSide(sasrec, text_view, 0.75)
    with torch.no_grad():
        got = side.score_state(seqs) @ side.score_items().T
        want = sasrec.full_sort_scores(seqs) + 0.75 * text_view.full_sort_scores(seqs)
    assert side.score_dim == 32 and torch.allclose(got, want, atol=1e-5)
    # items with the same text features get the same text-view embedding: the view is text, not ids
    text_view.set_text_features(torch.cat([features[:1], features[:1], features[2:]]))
    emb = text_view.item_embeddings()
    assert torch.equal(emb[0], emb[1]) and not torch.equal(emb[0], emb[2])
    alone = hybrid.IDSide(sasrec, text_view, 0.0)
    assert alone.text_view is None and alone.score_dim == 16
    assert torch.allclose(alone.score_state(seqs) @ alone.score_items().T, sasrec.full_sort_scores(seqs), atol=1e-6)


def test_a_seed_ensemble_id_model_scores_the_members_mean_in_one_dot_product():
    """IDSide with partners: score_state . score_items = the mean of the members' SASRec logits (+ the
    text view's weighted term); the LM still reads the first member alone."""
    torch.manual_seed(0)
    n_items = 12
    config = SASRecConfig(n_items=n_items, max_len=8, dim=16, layers=1, heads=2, dropout=0.0)
    members = [SASRec(config).eval() for _ in range(3)]
    text_view = SASRec(SASRecConfig(**{**config.__dict__, "text_dim": 24})).eval()
    text_view.set_text_features(torch.randn(n_items, 24))
    seqs = torch.randint(0, n_items + 1, (5, 8))
    with torch.no_grad():
        mean = sum(m.full_sort_scores(seqs) for m in members) / 3
        side = hybrid.IDSide(members[0], partners=members[1:])
        assert side.score_dim == 48 and len(side.members) == 3
        assert torch.allclose(side.full_sort_scores(seqs), mean, atol=1e-5)
        assert not torch.allclose(mean, members[0].full_sort_scores(seqs), atol=1e-3)
        with_text = hybrid.IDSide(members[0], text_view, 0.5, members[1:])
        assert torch.allclose(with_text.full_sort_scores(seqs), mean + 0.5 * text_view.full_sort_scores(seqs),
                              atol=1e-5)
        assert torch.equal(with_text.user_embedding(seqs), members[0].user_embedding(seqs))
        assert torch.equal(with_text.item_embeddings(), members[0].item_embeddings())


def test_two_terms_are_weighted_jointly_and_a_useless_one_gets_zero():
    """choose_weights over (text view, LM): the term that knows the targets is weighted, the harmful
    one is not; both at 0 is the grid point that scores the base alone."""
    split = small_split()
    users = np.array(sorted(split.valid))
    rng = np.random.default_rng(2)
    base = rng.normal(size=(len(users), split.n_items))
    knows = on_targets(split, users, 10.0)
    chosen = hybrid.choose_weights(base, [-knows, knows], users, split, VALID, grid=(0.0, 0.5, 1.0))
    assert chosen.weights[0] == 0.0 and chosen.weights[1] > 0
    assert len(chosen.table) == 9 and chosen.honest["ndcg@10"] > chosen.table["0,0"]
    chosen = hybrid.choose_weights(base, [knows, -knows], users, split, VALID, grid=(0.0, 0.5, 1.0))
    assert chosen.weights[0] > 0 and chosen.weights[1] == 0.0


def test_a_term_is_served_only_at_the_stated_confidence():
    """A term that knows the targets of only 3 of 200 users wins out of fold (it cannot hurt anyone),
    but those users are missing from ~5% of bootstrap resamples, so its confidence is below that of
    a term that knows every target; min_confidence keeps
    the term exactly when that confidence reaches it, and otherwise falls back to the base."""
    split = small_split(n_users=200, n_items=60, seed=5)
    users = np.array(sorted(split.valid))
    base = np.random.default_rng(6).normal(size=(len(users), split.n_items))
    few = on_targets(split, users, 10.0)
    few[np.arange(len(users)) % 67 != 0] = 0.0          # users 0, 67, 134
    loose = hybrid.choose_weight(base, few, users, split, VALID, min_confidence=0.0)
    assert loose.weight > 0 and loose.honest["ndcg@10"] > loose.table["0"]
    everyone = hybrid.choose_weight(base, on_targets(split, users, 10.0), users, split, VALID, min_confidence=0.95)
    assert everyone.weight > 0 and everyone.confidence > loose.confidence
    at = hybrid.choose_weight(base, few, users, split, VALID, min_confidence=loose.confidence)
    above = hybrid.choose_weight(base, few, users, split, VALID, min_confidence=loose.confidence + 1e-6)
    assert at.weight == loose.weight and above.weight == 0.0
    assert above.honest["ndcg@10"] == above.table["0"] and above.confidence == loose.confidence
