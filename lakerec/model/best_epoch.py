"""Model selection by a validation metric, shared by both trainers (SASRec's `fit` and the LM's
`Trainer.fit_stage`): every evaluated epoch is offered, the best one's weights are copied, and
they are restored when training ends, so a later, worse epoch never reaches the caller."""
from __future__ import annotations

from torch import nn


class BestEpoch:
    def __init__(self):
        self.score = None               # the best validation metric so far (higher is better)
        self.result = None              # what the caller recorded with it
        self.state = None               # a copy of the model's weights at that epoch
        self.stale = 0                  # evaluations since the best one (early stopping)

    def offer(self, model: nn.Module, score: float, result=None) -> bool:
        """Keep this epoch when it beats the best so far (ties keep the earlier one)."""
        if self.score is not None and not score > self.score:
            self.stale += 1
            return False
        self.score, self.result, self.stale = score, result, 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return True

    def restore(self, model: nn.Module) -> None:
        model.load_state_dict(self.state)
