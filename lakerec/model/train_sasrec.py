"""Training and scoring of SASRec on a leave-one-out split, with early stopping on validation NDCG@10."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from lakerec import logs
from lakerec.eval.protocol import ScoreFn, SplitData, evaluate, seen_before
from lakerec.eval.split import VALID
from lakerec.model.best_epoch import BestEpoch
from lakerec.model.sasrec import SASRec, SASRecConfig


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 5
    patience: int = 5            # evaluations without improvement before stopping
    seed: int = 0


@dataclass
class FitResult:
    model: SASRec
    best_valid: dict
    history: list = field(default_factory=list)
    seconds: float = 0.0
    examples_per_s: float = 0.0


def left_pad(indices: np.ndarray, max_len: int) -> np.ndarray:
    """Catalogue indices -> model ids (+1), keep the newest max_len, left-pad with 0."""
    tail = np.asarray(indices[-max_len:], dtype=np.int64) + 1
    return np.concatenate([np.zeros(max_len - len(tail), dtype=np.int64), tail])


def training_tensors(data: SplitData, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-item pairs from each user's training sequence: inputs s[:-1], targets s[1:]."""
    inputs, targets = [], []
    for items in data.train.values():
        if len(items) < 2:
            continue
        inputs.append(left_pad(items[:-1], max_len))
        targets.append(left_pad(items[1:], max_len))
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))


def scorer(model: SASRec, data: SplitData, on: str, device: str = "cpu") -> ScoreFn:
    max_len = model.config.max_len

    def scores(users: np.ndarray) -> np.ndarray:
        seq = torch.from_numpy(np.stack([left_pad(seen_before(data, int(u), on), max_len) for u in users]))
        model.eval()
        return model.full_sort_scores(seq.to(device)).float().cpu().numpy()
    return scores


def fit(data: SplitData, model_config: SASRecConfig, train: TrainConfig, device: str = "cpu",
        log=logs.get(__name__).info, init_state: dict | None = None,
        text_features: torch.Tensor | None = None, name: str = "sasrec") -> FitResult:
    """init_state: weights to start from (a warm start from the champion) instead of a fresh init;
    text_features: the text view's frozen item features (model_config.text_dim > 0)."""
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    model = SASRec(model_config)
    if init_state is not None:
        model.load_state_dict(init_state)
    if text_features is not None:
        model.set_text_features(text_features)
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    inputs, targets = training_tensors(data, model_config.max_len)
    best, log_rows = BestEpoch(), []
    start, seen = time.time(), 0
    for epoch in range(1, train.epochs + 1):
        model.train()
        order = rng.permutation(len(inputs))
        total = 0.0
        for begin in range(0, len(order), train.batch_size):
            batch = order[begin:begin + train.batch_size]
            loss = model.loss(inputs[batch].to(device), targets[batch].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            seen += len(batch)
        if epoch % train.eval_every and epoch != train.epochs:
            continue
        valid = evaluate(scorer(model, data, VALID, device), data, on=VALID)
        log_rows.append({"epoch": epoch, "loss": total / len(order), **valid})
        log(f"[{name}] epoch {epoch}: loss {total / len(order):.4f} valid ndcg@10 {valid['ndcg@10']:.4f} "
            f"hr@10 {valid['hr@10']:.4f}")
        if not best.offer(model, valid["ndcg@10"], valid) and best.stale >= train.patience:
            break
    best.restore(model)
    seconds = time.time() - start
    return FitResult(model, best.result, log_rows, seconds, seen / seconds if seconds else 0.0)
