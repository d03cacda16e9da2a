"""Two-stage fine-tuning of the recommendation LM (RSLLM) with RecSysLLM's objectives.

Stage 1: text-only prompts. Stage 2: unified prompts (projected ID tokens next to each item's text
and the ID model's sequence token), initialised from stage 1 (LLaRA's curriculum). Each step's loss:
  w_lm * blank-infilling LM loss (task answers + entity-aware masked history spans, chronological)
+ w_rec * softmax over the whole catalogue (the pooled user vector vs every item's text vector)
+ w_align * InfoNCE(projected ID embedding, the item's text in the input space)   (stage 2 only)

Where the compute goes (issue: most of it used to be padding and re-encoded items):
- item text vectors: the backbone pools every item's text once per epoch (no gradient); only the
  item head learns on top, so the catalogue softmax costs one (B, D) x (D, N) product per step;
- examples: every user, `examples_per_user` cut points (the newest training item and earlier ones),
  mostly the short scoring prompt; batches grouped by token length, so padding is small;
- two learning rates: LoRA adapters at `lr`, freshly initialised heads/projectors/position tables
  at `head_lr`, both with a linear warm-up.
After every epoch the LM is scored on the validation items (full ranking) alone and mixed with
SASRec (`lakerec.model.hybrid`); the best epoch wins.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from lakerec import logs
from lakerec.model.best_epoch import BestEpoch
from lakerec.model.optim import param_groups, warmup_schedule
from lakerec.model.device import autocast, resolved_precision
from lakerec.model.eval_llm import Evaluator
from lakerec.model.examples import ExampleBuilder
from lakerec.model.glm import collate
from lakerec.model.losses import alignment_loss
from lakerec.model.recllm import RecLLM
from lakerec.model.sasrec import SASRec
from lakerec.model.train_sasrec import left_pad
from rec_udf.task_prompts import trained_templates


@dataclass
class LLMTrainConfig:
    stage1_epochs: int = 1
    stage2_epochs: int = 2
    batch_size: int = 16
    lr: float = 5e-4                   # LoRA adapters
    head_lr: float = 2e-3              # fresh heads, projectors, 2D position tables, the BERT LM head
    warmup: float = 0.1                # share of a stage's steps with a linear warm-up
    weight_decay: float = 0.01
    examples_per_user: int = 2         # cut points per user and epoch (the newest training item first)
    family_weights: dict = field(default_factory=lambda: {"sequential": 0.8, "direct": 0.04, "rating": 0.06,
                                                          "explanation": 0.1})
    mask_prob: float = 0.3
    w_lm: float = 1.0
    w_rec: float = 1.0
    w_align: float = 0.5
    align_items: int = 128             # catalogue items per step in the alignment loss
    max_users: int | None = None       # train on a slice of users (tests)
    eval_users: int | None = None      # evaluate generation tasks on the first N evaluated users
    rank_users: int | None = None      # full-ranking evaluation on the first N users (None: all)
    max_new_tokens: int = 24
    seed: int = 0
    log_every: int = 20
    # Training's forward passes: "bf16" (mixed precision: matrix products in bf16, weights and
    # gradients fp32), "fp32", or "auto": bf16 where the device multiplies bf16 natively (a CPU with
    # AMX / AVX512-BF16, a bf16 GPU), else fp32. Validation, evaluation and export stay fp32.
    precision: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)


CANDIDATE_LIST_TOKENS = 300       # about what 20 candidate titles add to a prompt (for length grouping)
log = logs.get(__name__).info


class Trainer:
    def __init__(self, model: RecLLM, builder: ExampleBuilder, id_model: SASRec | None, config: LLMTrainConfig,
                 device: str = "cpu"):
        self.model, self.builder, self.id_model, self.config, self.device = model, builder, id_model, config, device
        self.data = builder.data
        self.rng = np.random.default_rng(config.seed)
        self.users = sorted(u for u, items in self.data.split.train.items() if len(items) >= 2)
        if config.max_users:
            self.users = self.users[:config.max_users]
        self.device_type = "cuda" if str(device).startswith("cuda") else "cpu"      # torch.autocast's name
        self.precision = resolved_precision(config.precision, self.device_type)
        self.examples_seen = 0
        self.train_seconds = 0.0
        self.tokens_real = 0               # non-padding tokens through the backbone in training steps
        self.tokens_padded = 0             # every position through the backbone (real + padding)
        pad = builder.special.pad
        self.text_items = builder.item_examples(False)
        self.text_inputs = model.text_input_vectors(self.text_items, pad)

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
            extra = min(self.config.examples_per_user - 1, n_train - 2)
            cuts = [n_train - 1] + list(self.rng.choice(np.arange(1, n_train - 1), size=extra, replace=False))
            for n in cuts:
                family = families[self.rng.choice(len(families), p=weights / weights.sum())]
                if family == "rating" and not self.builder.rated(user, int(self.data.sequences[user][n])):
                    family = "sequential"
                templates = trained_templates(family)
                plan.append((user, int(n), family, templates[self.rng.integers(len(templates))][1]))
        return plan

    def _batches(self, plan: list, unified: bool) -> list[list]:
        """Shuffled batches of examples of similar token length (sorted within chunks of 32 batches)."""
        plan = [plan[i] for i in self.rng.permutation(len(plan))]
        size = self.config.batch_size
        batches = []
        for begin in range(0, len(plan), size * 32):
            chunk = sorted(plan[begin:begin + size * 32],
                           key=lambda r: len(self.builder.tokenized(r[0], r[1], unified).ids)
                           + (CANDIDATE_LIST_TOKENS if r[2] == "direct" else 0))
            batches += [chunk[b:b + size] for b in range(0, len(chunk), size)]
        return [batches[i] for i in self.rng.permutation(len(batches))]

    def _candidates(self, user: int, n: int, target: int, k: int = 20) -> list[int]:
        seen = set(self.data.sequences[user][:n].tolist()) | {target}
        pool = []
        while len(pool) < k - 1:
            c = int(self.rng.integers(self.data.split.n_items))
            if c not in seen and c not in pool:
                pool.append(c)
        pool.insert(int(self.rng.integers(k)), target)
        return pool

    def train_epoch(self, optimizer, schedule, batches: list, unified: bool, stage: str) -> dict:
        cfg = self.config
        pad = self.builder.special.pad
        start = time.time()                 # the epoch's time includes the item feature pass
        self.model.eval()
        with autocast(self.precision, self.device_type):
            features = self.model.item_features(self.text_items, pad)   # once per epoch, no gradient
        self.model.train()
        n_items = self.data.split.n_items
        totals = {"loss": 0.0, "lm": 0.0, "rec": 0.0, "align": 0.0}
        steps = done = 0
        for rows in batches:
            examples, positives = [], []
            for user, n, family, template in rows:
                target = int(self.data.sequences[user][n])
                candidates = self._candidates(user, n, target) if family == "direct" else ()
                examples.append(self.builder.example(user, n, family, template, unified=unified, target=target,
                                                     candidates=candidates, rng=self.rng, mask_prob=cfg.mask_prob))
                positives.append(target if family == "sequential" else -1)
            batch = collate(examples, pad).to(self.device)
            states = self.user_states([r[0] for r in rows], [r[1] for r in rows]) if unified else None
            with autocast(self.precision, self.device_type):
                loss, lm, rec, align = self._losses(batch, states, features, positives, unified, n_items)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            schedule.step()
            steps += 1
            done += len(rows)
            self.examples_seen += len(rows)
            self.tokens_real += int(sum(len(e.ids) for e in examples))
            self.tokens_padded += int(batch.ids.numel())
            for key, value in (("loss", loss), ("lm", lm), ("rec", rec), ("align", align)):
                totals[key] += value.item()
            if steps % cfg.log_every == 0:
                log(f"[{stage}] {done}/{sum(map(len, batches))} examples, loss {totals['loss'] / steps:.3f} "
                    f"(lm {totals['lm'] / steps:.3f}, rec {totals['rec'] / steps:.3f}, "
                    f"align {totals['align'] / steps:.3f}), {done / (time.time() - start):.1f} examples/s")
        seconds = time.time() - start
        self.train_seconds += seconds
        return {k: v / max(steps, 1) for k, v in totals.items()} | {"examples": done, "seconds": seconds}

    def _losses(self, batch, states, features, positives: list[int], unified: bool, n_items: int):
        """The step's weighted loss and its parts (LM, catalogue softmax, alignment)."""
        cfg = self.config
        hidden = self.model.hidden(batch, states)
        lm = self.model.lm_loss(hidden, batch)
        loss = cfg.w_lm * lm
        rec = align = torch.zeros((), device=self.device)
        seq_rows = [i for i, p in enumerate(positives) if p >= 0]
        # the two similarity products are small; in fp32, since a bf16 cosine (steps of 2^-8) over a
        # temperature of 0.07 would move the logits by ~0.06
        if seq_rows and cfg.w_rec:
            users = self.model.user_vectors(hidden, batch)[seq_rows].float()
            items = self.model.item_vectors(features).float()
            with torch.autocast(self.device_type, enabled=False):
                logits = self.model.lm_scores(users, items)
            rec = F.cross_entropy(logits, torch.tensor([positives[i] for i in seq_rows], device=self.device))
            loss = loss + cfg.w_rec * rec
        if unified and cfg.w_align:
            picked = {p for p in positives if p >= 0} | set(self.rng.integers(n_items, size=cfg.align_items).tolist())
            ids = torch.tensor(sorted(picked), device=self.device)
            ids_in, text_in = self.model.id_input_vectors(ids).float(), self.text_inputs[ids].float()
            with torch.autocast(self.device_type, enabled=False):
                align = alignment_loss(F.normalize(ids_in, dim=-1), F.normalize(text_in, dim=-1),
                                       self.model.config.temperature)
            loss = loss + cfg.w_align * align
        return loss, lm, rec, align

    def fit_stage(self, stage: str, epochs: int, unified: bool, id_valid: np.ndarray | None = None,
                  min_confidence: float = 0.0) -> dict:
        """Train `epochs` epochs, each followed by the LM alone on validation; the epoch with the best LM
        alone is kept. Then, with `id_valid` (the ID side's validation scores), the mix is judged once,
        at that epoch (`Evaluator.judge_mix`: the LM weight out of fold, kept only at
        `min_confidence`). Choosing the epoch by the mix too would pick the epoch where the LM term
        happened to look best (in the full profile of 2026-11-24 an epoch at 95% confidence, next to
        one at 45%, and the term lowered test). Returns best_valid (the LM alone), best_hybrid_valid,
        lm_weight, lm_confidence, weight_table and the history."""
        epoch_batches = [self._batches(self._plan(), unified) for _ in range(epochs)]
        optimizer = torch.optim.AdamW(param_groups(self.model, self.config), weight_decay=self.config.weight_decay)
        schedule = warmup_schedule(optimizer, sum(map(len, epoch_batches)), self.config.warmup)
        evaluator = Evaluator(self)
        best, history = BestEpoch(), []
        for epoch, batches in enumerate(epoch_batches, start=1):
            stats = self.train_epoch(optimizer, schedule, batches, unified, stage)
            lm_valid, valid = evaluator.validation(unified)
            history.append({"epoch": epoch, **stats, **{f"valid_{k}": v for k, v in valid.items()}})
            log(f"[{stage}] epoch {epoch}: loss {stats['loss']:.4f}, {stats['examples'] / stats['seconds']:.2f} "
                f"examples/s, valid ndcg@10 LM alone {valid['ndcg@10']:.4f}")
            best.offer(self.model, valid["ndcg@10"], {"epoch": epoch, "best_valid": valid, "lm_valid": lm_valid})
        best.restore(self.model)
        # The kept epoch's validation scores are judged as they are: no second scoring pass.
        kept = best.result
        result = {"epoch": kept["epoch"], "best_valid": kept["best_valid"],
                  **evaluator.judge_mix(kept["lm_valid"], id_valid, min_confidence)}
        if id_valid is not None:
            log(f"[{stage}] epoch {result['epoch']} kept: hybrid {result['best_hybrid_valid']['ndcg@10']:.4f} out of "
                f"fold at lm_weight {result['lm_weight']} (the out-of-fold mix beat the ID side alone, "
                f"{result['weight_table']['0']:.4f}, in {result['lm_confidence']:.0%} of resamples)")
        return {**result, "history": history}
