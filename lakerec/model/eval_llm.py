"""Evaluation of the recommendation LM: `Trainer.fit_stage` scores validation with it after every
epoch, the training run (`lakerec.training`) the test split and the generation tasks."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from lakerec.eval.candidates import generation_budget, match_answer
from lakerec.eval.metrics import candidate_metrics, ranking_metrics, rmse_mae
from lakerec.eval.protocol import candidate_lists, matrix_ranks
from lakerec.eval.split import TEST, VALID
from lakerec.model import hybrid
from lakerec.model.glm import collate
from lakerec.model.tasks import unigram_f1
from rec_udf.task_prompts import answer_text, heldout_template, trained_templates

if TYPE_CHECKING:                       # the Trainer builds an Evaluator; only its type is needed here
    from lakerec.model.train_llm import Trainer


class Evaluator:
    """Every LM evaluation on one split: full ranking (the LM alone; mixing with SASRec is the
    caller's, through `lakerec.model.hybrid`), free generation on 20 candidates, ratings,
    explanations; with the trained templates and, zero-shot, the held-out ones."""

    def __init__(self, trainer: Trainer, batch_size: int = 32):
        self.t, self.batch_size = trainer, batch_size
        self.model, self.builder, self.data = trainer.model, trainer.builder, trainer.data

    def users(self, on: str, limit: int | None = None) -> np.ndarray:
        """The evaluated users: sorted ids with an `on` item, the first `rank_users` of them."""
        targets = self.data.split.test if on == TEST else self.data.split.valid
        users = sorted(targets)[:self.t.config.rank_users or None]
        return np.array(users[:limit] if limit else users, dtype=np.int64)

    def item_matrix(self) -> torch.Tensor:
        self.model.eval()
        return self.model.item_matrix(self.t.text_items, self.builder.special.pad)

    @torch.no_grad()
    def user_matrix(self, users, on: str, unified: bool, template: str = "") -> torch.Tensor:
        self.model.eval()
        out = []
        for begin in range(0, len(users), self.batch_size):
            chunk = [int(u) for u in users[begin:begin + self.batch_size]]
            lengths = [self.data.prefix_length(u, on) for u in chunk]
            examples = [self.builder.example(u, n, "sequential", template, unified=unified, target=None)
                        for u, n in zip(chunk, lengths)]
            batch = collate(examples, self.builder.special.pad).to(self.t.device)
            states = self.t.user_states(chunk, lengths) if unified else None
            out.append(self.model.user_vectors(self.model.hidden(batch, states), batch))
        return torch.cat(out)

    @torch.no_grad()
    def lm_scores(self, users, on: str, unified: bool, template: str = "",
                  items: torch.Tensor | None = None) -> np.ndarray:
        """(len(users), n_items) LM scores; `items`: the item matrix when the caller has it."""
        items = self.item_matrix() if items is None else items
        return self.model.lm_scores(self.user_matrix(users, on, unified, template), items).float().cpu().numpy()

    def validation(self, unified: bool) -> tuple[np.ndarray, dict]:
        """The LM's scores of the evaluated validation users (`users(VALID)`) and their ranking metrics."""
        users = self.users(VALID)
        lm_valid = self.lm_scores(users, VALID, unified)
        return lm_valid, ranking_metrics(matrix_ranks(lm_valid, users, self.data.split, VALID))

    def judge_mix(self, lm_valid: np.ndarray, id_valid: np.ndarray | None, min_confidence: float = 0.0) -> dict:
        """With `id_valid` (the ID side's scores of the same users), the hybrid whose LM weight
        `hybrid.choose_weight` picks out of fold, kept only at `min_confidence`; weight 0 without it."""
        result = {"lm_weight": 0.0, "lm_confidence": 0.0, "weight_table": {}, "best_hybrid_valid": None}
        if id_valid is not None:
            chosen = hybrid.choose_weight(id_valid, lm_valid, self.users(VALID), self.data.split, VALID,
                                          min_confidence=min_confidence)
            result.update(lm_weight=chosen.weight, lm_confidence=chosen.confidence,
                          weight_table=chosen.table, best_hybrid_valid=chosen.honest)
        return result

    def _generate(self, users, on, unified, build, allowed_first=None, max_new_tokens=None):
        texts, firsts = [], []
        for begin in range(0, len(users), self.batch_size):
            chunk = [int(u) for u in users[begin:begin + self.batch_size]]
            lengths = [self.data.prefix_length(u, on) for u in chunk]
            batch = collate([build(u, n) for u, n in zip(chunk, lengths)], self.builder.special.pad).to(self.t.device)
            states = self.t.user_states(chunk, lengths) if unified else None
            tokens, first = self.model.generate(batch, states, max_new_tokens or self.t.config.max_new_tokens,
                                                allowed_first)
            texts += [self.builder.tokenizer.decode(t) for t in tokens]
            firsts.append(first)
        return texts, torch.cat(firsts)

    def candidates(self, on: str, unified: bool, template: str, seed: int = 2024, k: int = 20) -> dict:
        """LLaRA/RSLLM protocol by free generation: the held-out item + 19 random unseen items (fixed
        seed, the same lists as every score-based model's), the answer valid when exactly one
        candidate title appears in it (`eval.candidates.match_answer`), room for the longest title."""
        users = [int(u) for u in self.users(on, self.t.config.eval_users)]
        lists = candidate_lists(self.data.split, users, on, seed, k)
        titles = [answer_text(item) for item in self.data.items]
        budget = generation_budget(self.builder.tokenizer, titles)
        self.model.eval()
        texts, _ = self._generate(users, on, unified, lambda u, n: self.builder.example(
            u, n, "direct", template, unified=unified, target=None, candidates=lists[u]), max_new_tokens=budget)
        answers = []
        for u, text in zip(users, texts):
            hit = match_answer(text, [titles[c] for c in lists[u]])
            answers.append(None if hit is None else lists[u][hit])
        return candidate_metrics(answers, [lists[u] for u in users], [self.data.target(u, on) for u in users])

    def ratings(self, on: str, unified: bool, template: str) -> dict:
        users = [int(u) for u in self.users(on, self.t.config.eval_users)
                 if self.builder.rated(int(u), self.data.target(int(u), on))]
        digits = [self.builder.ids(str(d))[0] for d in range(1, 6)]
        self.model.eval()
        _, first = self._generate(users, on, unified, lambda u, n: self.builder.example(
            u, n, "rating", template, unified=unified, target=self.data.target(u, on), with_answer=False))
        probs = torch.softmax(first[:, digits], dim=-1).cpu().numpy()
        predicted = probs @ np.arange(1, 6)
        actual = [float(self.builder.answer(u, self.data.prefix_length(u, on), "rating", self.data.target(u, on)))
                  for u in users]
        return rmse_mae(predicted, np.array(actual)) | {"users": len(users)}

    def explanations(self, on: str, unified: bool, template: str) -> dict:
        users = [int(u) for u in self.users(on, self.t.config.eval_users)]
        self.model.eval()
        texts, _ = self._generate(users, on, unified, lambda u, n: self.builder.example(
            u, n, "explanation", template, unified=unified, target=self.data.target(u, on), with_answer=False))
        refs = [self.builder.answer(u, self.data.prefix_length(u, on), "explanation", self.data.target(u, on))
                for u in users]
        f1 = [unigram_f1(t, r) for t, r in zip(texts, refs)]
        return {"unigram_f1": float(np.mean(f1)) if f1 else 0.0, "users": len(users),
                "example": texts[0] if texts else ""}

    def generation_report(self, on: str, unified: bool) -> dict:
        """The generation tasks on the first `eval_users` users: free-generation 20 candidates
        (`direct_generated`), rating, explanation; trained templates and, zero-shot, held-out ones."""
        report = {}
        for family, fn in (("direct_generated", self.candidates), ("rating", self.ratings),
                           ("explanation", self.explanations)):
            task = "direct" if family == "direct_generated" else family
            report[family] = fn(on, unified, trained_templates(task)[0][1])
            report[f"{family}_heldout"] = fn(on, unified, heldout_template(task)[1])
        return report
