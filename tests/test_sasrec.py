"""SASRec: the loss falls on a tiny batch, and it learns a simple sequential pattern."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lakerec.eval.protocol import SplitData, evaluate           # noqa: E402
from lakerec.model.sasrec import SASRec, SASRecConfig          # noqa: E402
from lakerec.model.train_sasrec import TrainConfig, fit, left_pad, training_tensors  # noqa: E402


def _cyclic_split(n_users=60, n_items=12, length=10, seed=0):
    """Each user walks the catalogue in steps of +1 from a random start: the next item is known."""
    rng = np.random.default_rng(seed)
    train, valid, test = {}, {}, {}
    for user in range(n_users):
        walk = (rng.integers(n_items) + np.arange(length)) % n_items
        train[user], valid[user], test[user] = walk[:-2], int(walk[-2]), int(walk[-1])
    return SplitData(np.arange(100, 100 + n_items), train, valid, test)


def test_left_pad_keeps_the_newest_items():
    assert left_pad(np.array([0, 1, 2, 3]), 3).tolist() == [2, 3, 4]
    assert left_pad(np.array([5]), 3).tolist() == [0, 0, 6]


@pytest.mark.parametrize("layers,text_dim", [(1, 0), (2, 0), (2, 16)])
def test_last_hidden_equals_the_full_pass_at_the_last_position(layers, text_dim):
    """The user state with the last layer computed at the last position only (scoring, evaluation)
    equals the full pass's last row, left padding included, for ID and text-view models."""
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=30, max_len=12, dim=16, layers=layers, heads=2, text_dim=text_dim)).eval()
    if text_dim:
        model.set_text_features(torch.randn(30, text_dim))
    seq = torch.randint(1, 31, (5, 12))
    seq[0, :9] = 0
    seq[1, :11] = 0
    with torch.no_grad():
        assert torch.allclose(model.last_hidden(seq), model.hidden(seq)[:, -1], atol=1e-5)
        assert torch.allclose(model.user_embedding(seq), model.hidden(seq)[:, -1], atol=1e-5)
        # and not the same as another position's state (the test can tell positions apart)
        assert not torch.allclose(model.last_hidden(seq), model.hidden(seq)[:, -2], atol=1e-3)


def test_loss_falls_on_a_tiny_batch():
    torch.manual_seed(0)
    data = _cyclic_split()
    model = SASRec(SASRecConfig(n_items=12, max_len=10, dim=32, layers=1, heads=1, dropout=0.0))
    inputs, targets = training_tensors(data, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = model.loss(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.3 * first


def test_learns_the_next_item_and_beats_chance():
    data = _cyclic_split()
    result = fit(data, SASRecConfig(n_items=12, max_len=10, dim=32, layers=1, heads=1, dropout=0.0),
                 TrainConfig(epochs=40, batch_size=32, lr=3e-3, eval_every=10, patience=2), log=lambda m: None)
    from lakerec.model.train_sasrec import scorer
    test = evaluate(scorer(result.model, data, "test"), data, on="test")
    # chance HR@1 over ~4 unseen candidates is ~0.25; the pattern makes the answer certain
    assert test["hr@1"] > 0.9
    assert result.model.item_embeddings().shape == (12, 32)
