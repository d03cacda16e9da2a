"""Two-stage fine-tuning of the recommendation LM (RSLLM) with RecSysLLM's objectives.

Stage 1: text-only prompts. Stage 2: unified prompts (projected ID tokens next to each item's text
and the ID model's sequence token), initialised from stage 1. Each step's loss:
  w_lm * blank-infilling LM loss (task answers + entity-aware masked history spans)
+ w_rec * InfoNCE(user vector at the blank, next item's vector; in-batch + sampled negatives)
+ w_align * InfoNCE(projected ID embedding, item text vector)          (stage 2 only)
After every epoch the model is scored on the validation items (full ranking); the best epoch wins.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from lakerec.eval.metrics import candidate_metrics, ranking_metrics, rmse_mae, target_rank
from lakerec.eval.protocol import candidate_lists, seen_before
from lakerec.eval.split import TEST, VALID
from lakerec.model import tasks
from lakerec.model.examples import ExampleBuilder
from lakerec.model.glm import collate
from lakerec.model.losses import alignment_loss, user_item_loss
from lakerec.model.recllm import RecLLM
from lakerec.model.sasrec import SASRec
from lakerec.model.train_sasrec import left_pad


@dataclass
class LLMTrainConfig:
    stage1_epochs: int = 1
    stage2_epochs: int = 2
    batch_size: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.01
    examples_per_user: int = 1
    family_weights: dict = field(default_factory=lambda: {"sequential": 0.6, "direct": 0.15, "rating": 0.1,
                                                          "explanation": 0.15})
    mask_prob: float = 0.5
    n_negatives: int = 64
    w_lm: float = 1.0
    w_rec: float = 1.0
    w_align: float = 0.5
    max_users: int | None = None       # train on a slice of users (quick profile)
    eval_users: int | None = None      # evaluate generation tasks on the first N evaluated users
    rank_users: int | None = None      # full-ranking evaluation on the first N users (None: all)
    max_new_tokens: int = 24
    seed: int = 0
    log_every: int = 20

    def to_dict(self) -> dict:
        return asdict(self)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Trainer:
    def __init__(self, model: RecLLM, builder: ExampleBuilder, id_model: SASRec | None, config: LLMTrainConfig,
                 device: str = "cpu"):
        self.model, self.builder, self.id_model, self.config, self.device = model, builder, id_model, config, device
        self.data = builder.data
        self.rng = np.random.default_rng(config.seed)
        self.users = sorted(u for u, items in self.data.split.train.items() if len(items) >= 2)
        if config.max_users:
            self.users = self.users[:config.max_users]
        self.examples_seen = 0
        self.train_seconds = 0.0

    # --- ID-model states for USER_SLOT tokens ---------------------------------------------------
    @torch.no_grad()
    def user_states(self, users, lengths) -> torch.Tensor | None:
        if self.id_model is None:
            return None
        max_len = self.id_model.config.max_len
        seqs = np.stack([left_pad(self.data.sequences[u][:n], max_len) for u, n in zip(users, lengths)])
        self.id_model.eval()
        return self.id_model.user_embedding(torch.from_numpy(seqs).to(self.device))

    # --- one epoch --------------------------------------------------------------------------------
    def _plan(self) -> list[tuple[int, int, str, str]]:
        """(user, prefix length, family, template) for every example of an epoch. The newest
        training item is always a target; extra examples per user take earlier cut points."""
        families = list(self.config.family_weights)
        weights = np.array([self.config.family_weights[f] for f in families], dtype=float)
        plan = []
        for user in self.users:
            n_train = len(self.data.split.train[user])
            cuts = [n_train - 1] + list(self.rng.integers(1, n_train, size=self.config.examples_per_user - 1))
            for n in cuts:
                family = families[self.rng.choice(len(families), p=weights / weights.sum())]
                if family == "rating" and not self.builder.rated(user, int(self.data.sequences[user][n])):
                    family = "sequential"
                templates = tasks.trained_templates(family)
                plan.append((user, int(n), family, templates[self.rng.integers(len(templates))][1]))
        order = self.rng.permutation(len(plan))
        return [plan[i] for i in order]

    def _candidates(self, user: int, n: int, target: int, k: int = 20) -> list[int]:
        seen = set(self.data.sequences[user][:n].tolist()) | {target}
        pool = []
        while len(pool) < k - 1:
            c = int(self.rng.integers(self.data.split.n_items))
            if c not in seen and c not in pool:
                pool.append(c)
        pool.insert(int(self.rng.integers(k)), target)
        return pool

    def train_epoch(self, optimizer, unified: bool, stage: str) -> dict:
        self.model.train()
        cfg = self.config
        plan = self._plan()
        item_examples = self.builder.item_examples(unified)
        text_items = self.builder.item_examples(False)
        totals = {"loss": 0.0, "lm": 0.0, "rec": 0.0, "align": 0.0}
        steps = 0
        start = time.time()
        for begin in range(0, len(plan), cfg.batch_size):
            rows = plan[begin:begin + cfg.batch_size]
            examples, positives = [], []
            for user, n, family, template in rows:
                target = int(self.data.sequences[user][n])
                candidates = self._candidates(user, n, target) if family == "direct" else ()
                examples.append(self.builder.example(user, n, family, template, unified=unified, target=target,
                                                     candidates=candidates, rng=self.rng, mask_prob=cfg.mask_prob))
                positives.append(target if family == "sequential" else -1)
            batch = collate(examples, self.builder.special.pad).to(self.device)
            states = self.user_states([r[0] for r in rows], [r[1] for r in rows]) if unified else None
            hidden = self.model.hidden(batch, states)
            lm = self.model.lm_loss(hidden, batch)
            loss = cfg.w_lm * lm
            seq_rows = [i for i, p in enumerate(positives) if p >= 0]
            rec = align = torch.zeros((), device=self.device)
            if seq_rows and cfg.w_rec:
                users = self.model.user_vectors(hidden, batch)[seq_rows]
                pos_items = [positives[i] for i in seq_rows]
                negatives = self.rng.integers(self.data.split.n_items, size=cfg.n_negatives).tolist()
                unique = sorted(set(pos_items) | set(negatives))
                where = {item: k for k, item in enumerate(unique)}
                item_batch = collate([item_examples[i] for i in unique], self.builder.special.pad).to(self.device)
                item_vecs = self.model.item_vectors(item_batch)
                ids = torch.tensor(unique, device=self.device)
                rec = user_item_loss(users, item_vecs, torch.tensor([where[p] for p in pos_items], device=self.device),
                                     ids, self.model.config.temperature)
                loss = loss + cfg.w_rec * rec
                if unified and cfg.w_align:
                    text_batch = collate([text_items[i] for i in unique], self.builder.special.pad).to(self.device)
                    text_vecs = self.model.item_vectors(text_batch)
                    align = alignment_loss(self.model.id_vectors(ids), text_vecs, self.model.config.temperature)
                    loss = loss + cfg.w_align * align
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            steps += 1
            self.examples_seen += len(rows)
            for key, value in (("loss", loss), ("lm", lm), ("rec", rec), ("align", align)):
                totals[key] += value.item()
            if steps % cfg.log_every == 0:
                rate = (begin + len(rows)) / (time.time() - start)
                log(f"[{stage}] {begin + len(rows)}/{len(plan)} examples, loss {totals['loss'] / steps:.3f} "
                    f"(lm {totals['lm'] / steps:.3f}, rec {totals['rec'] / steps:.3f}, "
                    f"align {totals['align'] / steps:.3f}), {rate:.1f} examples/s")
        seconds = time.time() - start
        self.train_seconds += seconds
        return {k: v / max(steps, 1) for k, v in totals.items()} | {"examples": len(plan), "seconds": seconds}

    def fit_stage(self, stage: str, epochs: int, unified: bool) -> dict:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        best, best_state, history = None, None, []
        for epoch in range(1, epochs + 1):
            stats = self.train_epoch(optimizer, unified, stage)
            valid = Evaluator(self).ranking(VALID, unified)
            history.append({"epoch": epoch, **stats, **{f"valid_{k}": v for k, v in valid.items()}})
            log(f"[{stage}] epoch {epoch}: loss {stats['loss']:.4f}, {stats['examples'] / stats['seconds']:.2f} "
                f"examples/s, valid ndcg@10 {valid['ndcg@10']:.4f} hr@10 {valid['hr@10']:.4f}")
            if best is None or valid["ndcg@10"] > best["ndcg@10"]:
                best = valid
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(best_state)
        return {"best_valid": best, "history": history}


class Evaluator:
    """Every LM evaluation on one split: full ranking, the 20-candidate protocol, ratings,
    explanations; with the trained templates and, zero-shot, the held-out ones."""

    def __init__(self, trainer: Trainer, batch_size: int = 32):
        self.t, self.batch_size = trainer, batch_size
        self.model, self.builder, self.data = trainer.model, trainer.builder, trainer.data

    def _users(self, on: str, limit: int | None = None) -> list[int]:
        targets = self.data.split.test if on == TEST else self.data.split.valid
        users = sorted(targets)[:self.t.config.rank_users or None]
        return users[:limit] if limit else users

    def item_matrix(self, unified: bool) -> torch.Tensor:
        self.model.eval()
        return self.model.item_matrix(self.builder.item_examples(unified), self.builder.special.pad)

    @torch.no_grad()
    def user_matrix(self, users, on: str, unified: bool, template: str = "") -> torch.Tensor:
        self.model.eval()
        out = []
        for begin in range(0, len(users), self.batch_size):
            chunk = users[begin:begin + self.batch_size]
            lengths = [self.data.prefix_length(u, on) for u in chunk]
            examples = [self.builder.example(u, n, "sequential", template, unified=unified, target=None)
                        for u, n in zip(chunk, lengths)]
            batch = collate(examples, self.builder.special.pad).to(self.t.device)
            states = self.t.user_states(chunk, lengths) if unified else None
            out.append(self.model.user_vectors(self.model.hidden(batch, states), batch))
        return torch.cat(out)

    def ranking(self, on: str, unified: bool, template: str = "", items: torch.Tensor | None = None) -> dict:
        """`items`: the item matrix when the caller already has it (it depends on the model only)."""
        users = self._users(on)
        items = self.item_matrix(unified) if items is None else items
        scores = (self.user_matrix(users, on, unified, template) @ items.T).cpu().numpy()
        ranks = [target_rank(scores[row], self.data.target(u, on), seen_before(self.data.split, u, on))
                 for row, u in enumerate(users)]
        return ranking_metrics(np.array(ranks))

    def _generate(self, users, on, unified, build, allowed_first=None):
        texts, firsts = [], []
        for begin in range(0, len(users), self.batch_size):
            chunk = users[begin:begin + self.batch_size]
            lengths = [self.data.prefix_length(u, on) for u in chunk]
            batch = collate([build(u, n) for u, n in zip(chunk, lengths)], self.builder.special.pad).to(self.t.device)
            states = self.t.user_states(chunk, lengths) if unified else None
            tokens, first = self.model.generate(batch, states, self.t.config.max_new_tokens, allowed_first)
            texts += [self.builder.tokenizer.decode(t) for t in tokens]
            firsts.append(first)
        return texts, torch.cat(firsts)

    def candidates(self, on: str, unified: bool, template: str, seed: int = 2024, k: int = 20) -> dict:
        """LLaRA/RSLLM protocol: the held-out item + 19 random unseen items (fixed seed), free
        generation, the answer matched to a candidate title."""
        users = self._users(on, self.t.config.eval_users)
        lists = candidate_lists(self.data.split, users, on, seed, k)
        self.model.eval()
        texts, _ = self._generate(users, on, unified, lambda u, n: self.builder.example(
            u, n, "direct", template, unified=unified, target=None, candidates=lists[u]))
        answers = []
        for u, text in zip(users, texts):
            said = tasks.normalise_answer(text)
            named = [c for c in lists[u] if tasks.normalise_answer(tasks.answer_text(self.data.items[c])) == said]
            target = self.data.target(u, on)
            answers.append(target if target in named else (named[0] if named else None))
        return candidate_metrics(answers, [lists[u] for u in users], [self.data.target(u, on) for u in users])

    def ratings(self, on: str, unified: bool, template: str) -> dict:
        users = [u for u in self._users(on, self.t.config.eval_users) if self.builder.rated(u, self.data.target(u, on))]
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
        users = self._users(on, self.t.config.eval_users)
        self.model.eval()
        texts, _ = self._generate(users, on, unified, lambda u, n: self.builder.example(
            u, n, "explanation", template, unified=unified, target=self.data.target(u, on), with_answer=False))
        refs = [self.builder.answer(u, self.data.prefix_length(u, on), "explanation", self.data.target(u, on))
                for u in users]
        f1 = [tasks.unigram_f1(t, r) for t, r in zip(texts, refs)]
        return {"unigram_f1": float(np.mean(f1)) if f1 else 0.0, "users": len(users),
                "example": texts[0] if texts else ""}

    def full_report(self, on: str, unified: bool) -> dict:
        """Headline metrics (trained templates) plus zero-shot results on the held-out templates."""
        items = self.item_matrix(unified)
        report = {"ranking": self.ranking(on, unified, items=items)}
        for family, fn in (("direct", self.candidates), ("rating", self.ratings), ("explanation", self.explanations)):
            report[family] = fn(on, unified, tasks.trained_templates(family)[0][1])
            report[f"{family}_heldout"] = fn(on, unified, tasks.heldout_template(family)[1])
        report["ranking_heldout"] = self.ranking(on, unified, tasks.heldout_template("sequential")[1], items=items)
        return report

