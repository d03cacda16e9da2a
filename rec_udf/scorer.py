"""Scoring with an export bundle, torch-free: prompts -> user vectors -> top-N items -> explanations.

Inputs come as the `prompts` table has them: the prompt text with its entity spans, and the user's
item ids oldest first (the ID model's sequence). Token ids, slots and 2D positions are built by the
same code as at training (`rec_udf.glm_input`), so a prompt scores as it was evaluated.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rec_udf import bundle as bundle_format
from rec_udf import explanations as ex
from rec_udf import runtime
from rec_udf.errors import BundleError
from rec_udf.explainer import Explainer, template_explanation   # onnxruntime-genai loads only in Explainer()
from rec_udf.glm_input import MAX_INTER, MAX_INTRA, GLMExample, build_example, tokenize_prompt
from rec_udf.task_prompts import EXPLANATION_TEMPLATE, SCORING_TEMPLATE, task_sentence
from rec_udf.textualizer import EntitySpan, Prompt


@dataclass
class PromptBatch:
    """Part A of a batch of GLM examples, right-padded: the user encoder's and generator's inputs."""
    input_ids: np.ndarray
    slot: np.ndarray
    item: np.ndarray
    positions: np.ndarray
    inter: np.ndarray
    intra: np.ndarray
    attention_mask: np.ndarray
    blank: np.ndarray

    def feeds(self, *names: str) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in names}

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def as_prompt(text: str, spans: Sequence) -> Prompt:
    """A prompts-table row (text, entity_spans as dicts or (item_id, start, end)) as a Prompt."""
    entities = tuple(EntitySpan(int(s["item_id"]), int(s["start"]), int(s["end"])) if isinstance(s, dict)
                     else EntitySpan(*map(int, s)) for s in spans)
    return Prompt(text, entities, tuple(e.item_id for e in entities), len(entities), 0)


class Scorer:
    """One loaded bundle with its three ONNX Runtime sessions (load once per worker process)."""

    def __init__(self, bundle: bundle_format.Bundle, device: runtime.Device, allow_cpu_fallback: bool = True,
                 explainer: bool = False, max_new_tokens: int = 40, explain_batch_size: int = 8):
        self.bundle, self.device = bundle, device
        manifest = bundle.manifest
        self.sessions = {name: runtime.open_session(path, device) for name, path in bundle.graph_paths().items()}
        self.provider = runtime.active_provider(self.sessions["user_encoder"])
        if device.kind == "cuda" and self.provider != runtime.CUDA and not allow_cpu_fallback:
            raise BundleError(f"{bundle.directory}: asked for the CUDA execution provider, ONNX Runtime started "
                              f"{self.provider} (no usable GPU or CUDA libraries); allow the CPU fallback in "
                              "conf to run anyway")
        for name, task, (template_name, text) in (("scoring", manifest.tasks.scoring, SCORING_TEMPLATE),
                                                  ("explanation", manifest.tasks.explanation, EXPLANATION_TEMPLATE)):
            if (task.name, task.text) != (template_name, text):
                raise BundleError(f"{bundle.directory / bundle_format.MANIFEST}: tasks.{name} is {asdict(task)}, "
                                  f"this runtime's template is {template_name!r} {text!r}")
        self.tokenizer, self.special = bundle.tokenizer, bundle.special
        self.item_index = {int(item): i for i, item in enumerate(bundle.item_ids)}
        self._by_id = np.argsort(bundle.item_ids, kind="stable")     # for vectorised id -> index lookups
        self._sorted_ids = bundle.item_ids[self._by_id]
        self.unified = manifest.prompt_form == "unified"
        self.noun = manifest.template.spec.get("item_noun_plural", "items").removesuffix("s")
        self.lm_weight = float(manifest.hybrid.lm_weight)
        self.lm_dim = int(manifest.hybrid.lm_dim)
        generator = manifest.graphs.generator
        self.layers, self.heads, self.head_dim = generator.layers, generator.heads, generator.head_dim
        # explanations: evidence in the ID model's item space, titles and genres from the catalogue
        # SASRec's item space (explanation evidence): the first columns of the ID side
        hybrid = manifest.hybrid
        self.id_item_vectors = bundle.item_matrix[:, :int(hybrid.sasrec_dim or hybrid.id_dim)]
        self.title_index = ex.CatalogueIndex.of(bundle.catalogue)
        self.explainer = None
        if explainer:
            version = manifest.explainer.prompt_version if manifest.explainer else None
            if manifest.explainer and version != ex.EXPLAINER_PROMPT_VERSION:
                raise BundleError(f"{bundle.directory / bundle_format.MANIFEST}: explainer.prompt_version is "
                                  f"{version!r}, this runtime writes explainer prompts version "
                                  f"{ex.EXPLAINER_PROMPT_VERSION!r}; re-export the bundle")
            # the explainer runs where it was built for (manifest explainer.execution): cuda only on a GPU
            directory = bundle.explainer_dir()
            on_gpu = device.kind == "cuda" and manifest.explainer.execution == "cuda"
            self.explainer = Explainer(directory, device="cuda" if on_gpu else "cpu", threads=device.threads, gpu_id=device.gpu_id,
                                       max_new_tokens=max_new_tokens, batch_size=explain_batch_size)

    @classmethod
    def open(cls, directory: str | Path, prefer: str = "auto", threads: int | None = None,
             allow_cpu_fallback: bool = True, explainer: bool = False, max_new_tokens: int = 40,
             explain_batch_size: int = 8) -> "Scorer":
        return cls(bundle_format.load(directory), runtime.choose_device(prefer, threads), allow_cpu_fallback,
                   explainer, max_new_tokens, explain_batch_size)

    # --- inputs --------------------------------------------------------------------------------
    @property
    def max_positions(self) -> int:
        """Longest part A the backbone has position embeddings for (longer prompts are refused)."""
        return self.bundle.manifest.limits.max_positions

    def example(self, prompt: Prompt, suffix: str = "") -> GLMExample:
        tokenized = tokenize_prompt(self.tokenizer, self.special, prompt, self.item_index, self.unified)
        ids = self.tokenizer.encode(suffix, add_special_tokens=False).ids if suffix else ()
        return build_example(tokenized, self.special, suffix_ids=ids)

    def prompt_batch(self, prompts: Sequence[Prompt], suffixes: Sequence[str] | None = None) -> PromptBatch:
        return self.batch([self.example(p, suffixes[k] if suffixes else "") for k, p in enumerate(prompts)])

    def batch(self, examples: Sequence[GLMExample]) -> PromptBatch:
        length = max(e.part_a for e in examples)
        n = len(examples)
        grids = {name: np.zeros((n, length), dtype=np.int64) for name in ("slot", "item", "positions", "inter",
                                                                         "intra", "attention_mask")}
        input_ids = np.full((n, length), self.special.pad, dtype=np.int64)
        for row, e in enumerate(examples):
            a = e.part_a
            input_ids[row, :a] = e.ids[:a]
            for name, values in (("slot", e.slot), ("item", e.item), ("positions", e.pos), ("inter", e.inter),
                                 ("intra", e.intra)):
                grids[name][row, :a] = values[:a]
            grids["attention_mask"][row, :a] = 1
        np.minimum(grids["inter"], MAX_INTER - 1, out=grids["inter"])
        np.minimum(grids["intra"], MAX_INTRA - 1, out=grids["intra"])
        return PromptBatch(input_ids, blank=np.array([e.blank for e in examples], dtype=np.int64), **grids)

    def catalogue_index(self, item_ids) -> np.ndarray:
        """Catalogue index of each item id (any int array), -1 for ids the model does not know."""
        ids = np.asarray(item_ids, dtype=np.int64)
        if not len(self._sorted_ids):
            return np.full(ids.shape, -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self._sorted_ids) - 1)
        return np.where(self._sorted_ids[at] == ids, self._by_id[at], -1)

    @staticmethod
    def _ragged(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(row of each value, values) of a list of int lists, flattened."""
        lengths = np.fromiter((0 if v is None else len(v) for v in lists), dtype=np.int64, count=len(lists))
        values = [np.asarray(v, dtype=np.int64) for v in lists if v is not None and len(v)]
        flat = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
        return np.repeat(np.arange(len(lists)), lengths), flat

    def id_sequences(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Item ids oldest first -> (B, id_max_len) catalogue index + 1, newest last, left-padded with 0.
        Items the model does not know are skipped."""
        out = np.zeros((len(sequences), self.bundle.id_max_len), dtype=np.int64)
        rows, ids = self._ragged(sequences)
        index = self.catalogue_index(ids)
        rows, index = rows[index >= 0], index[index >= 0]
        # rows are ascending: an item's place in its row, then its distance from the row's end (newest = 1)
        place = np.arange(len(rows)) - np.searchsorted(rows, rows)
        from_end = np.bincount(rows, minlength=len(sequences))[rows] - place
        keep = from_end <= out.shape[1]
        out[rows[keep], out.shape[1] - from_end[keep]] = index[keep] + 1
        return out

    # --- scoring -------------------------------------------------------------------------------
    def id_model(self, sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(user slots, ID-side user states: SASRec's, then the weighted text view's if any) of the users'
        item sequences (the sequence encoder)."""
        slots, states = self.sessions["sequence_encoder"].run(None, {"id_sequence": self.id_sequences(sequences)})
        return slots, states

    def user_slots(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        return self.id_model(sequences)[0]

    def user_vectors(self, prompts: Sequence[Prompt], sequences: Sequence[Sequence[int]]) -> np.ndarray:
        return self.encode([self.example(p) for p in prompts], sequences)[0]

    def encode(self, examples: Sequence[GLMExample], sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(hybrid user vectors, user slots): the slots are the sequence encoder's output, reusable by
        `explain`. A bundle that serves the ID model alone (lm_weight 0) skips the LM pass: its user
        vector is [ID-side state ; 0], exactly what the user encoder would return."""
        slots, states = self.id_model(sequences)
        if self.lm_weight == 0:
            return np.concatenate([states, np.zeros((len(states), self.lm_dim), dtype=states.dtype)], axis=1), slots
        batch = self.batch(examples)
        feeds = batch.feeds("input_ids", "slot", "item", "positions", "inter", "intra", "attention_mask")
        feeds.update(user_slot=slots, id_state=states)
        return self.sessions["user_encoder"].run(None, feeds)[0], slots

    def top_k(self, user_vectors: np.ndarray, k: int, exclude: Sequence[Sequence[int]] = (),
              blocked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(catalogue indices (B, k), scores (B, k)), best first; `exclude` = item ids per user
        (their history); `blocked` = a catalogue-length bool mask of items nobody may get (e.g. no
        longer in the items table). argpartition, then a sort of the k survivors only. A score of
        -inf means the user had fewer than k items left to recommend."""
        scores = user_vectors @ self.bundle.item_matrix.T
        if blocked is not None:
            scores[:, blocked] = -np.inf
        if len(exclude):
            rows, ids = self._ragged(exclude)
            index = self.catalogue_index(ids)
            scores[rows[index >= 0], index[index >= 0]] = -np.inf
        k = min(k, scores.shape[1])
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)

    # --- explanations --------------------------------------------------------------------------
    def evidence(self, item: int, sequence: Sequence[int], ratings=None) -> ex.Evidence:
        """The evidence for explaining catalogue item `item` to a user with this item-id sequence
        (oldest first) and, when the prompts table has them, the user's ratings of it."""
        index = self.catalogue_index(sequence)
        known = index >= 0
        rated = [None] * len(index) if ratings is None else [None if r is None else float(r) for r in ratings]
        history = index[known]
        history_ratings = [r for r, k in zip(rated, known) if k]
        chosen = ex.select_evidence(self.id_item_vectors, item, history, history_ratings)
        catalogue = self.bundle.catalogue
        return ex.build_evidence(catalogue[item], [catalogue[history[c]] for c in chosen],
                                 [history_ratings[c] for c in chosen], [catalogue[h] for h in history])

    def explanations(self, evidence: Sequence[ex.Evidence], llm: bool = True) -> list:
        """Checked LLM sentences (fallback where one fails), or the data-built sentences (llm False)."""
        if not llm:
            return [template_explanation(e) for e in evidence]
        if self.explainer is None:
            raise BundleError(f"{self.bundle.directory}: this scorer was opened without its explainer")
        return self.explainer.explain(evidence, self.title_index, self.noun)

    # --- the GLM's own blank infilling (RecSysLLM's explanation task; benchmarks and tests) ---------
    def explanation_prompts(self, items: Sequence[int]) -> list[str]:
        catalogue = self.bundle.catalogue
        return [task_sentence(EXPLANATION_TEMPLATE[1], noun=self.noun, item=catalogue[i]) for i in items]

    def explain(self, prompts: Sequence[Prompt], sequences: Sequence[Sequence[int]], items: Sequence[int],
                max_new_tokens: int = 24, use_cache: bool = True, slots: np.ndarray | None = None) -> list[str]:
        """Why each user would like the given catalogue item: greedy infilling of the answer blank.
        `slots`: the users' sequence-encoder outputs when already computed (`encode`)."""
        batch = self.prompt_batch(prompts, self.explanation_prompts(items))
        slots = self.user_slots(sequences) if slots is None else slots
        step = self._generate_cached if use_cache else self._generate_uncached
        return [self.tokenizer.decode(t) for t in step(batch, slots, max_new_tokens)]

    def _run_generator(self, feeds: dict, past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        for i in range(self.layers):
            feeds[f"past_key_{i}"], feeds[f"past_value_{i}"] = past[2 * i], past[2 * i + 1]
        logits, *present = self.sessions["generator"].run(None, feeds)
        return logits, present

    def _empty_past(self, n: int) -> list[np.ndarray]:
        return [np.zeros((n, self.heads, 0, self.head_dim), dtype=np.float32)] * (2 * self.layers)

    @staticmethod
    def _span_inputs(batch: PromptBatch, tokens: np.ndarray, first_intra: int) -> dict[str, np.ndarray]:
        """Inputs of generated tokens: at the blank's position and entity, intra counting from first_intra."""
        n, t = tokens.shape
        rows = np.arange(n)
        intra = np.minimum(np.arange(first_intra, first_intra + t), MAX_INTRA - 1)
        return {"input_ids": tokens, "slot": np.zeros((n, t), dtype=np.int64), "item": np.zeros((n, t), dtype=np.int64),
                "positions": np.repeat(batch.positions[rows, batch.blank][:, None], t, axis=1),
                "inter": np.repeat(batch.inter[rows, batch.blank][:, None], t, axis=1),
                "intra": np.broadcast_to(intra, (n, t)).astype(np.int64)}

    def _generate_cached(self, batch: PromptBatch, slots: np.ndarray, max_new_tokens: int) -> list[list[int]]:
        """The prompt pass once, then one token per step against the key/value cache (GLM's dynamic
        positions: each new token sits at the blank's position, intra = tokens generated so far)."""
        n, a = batch.input_ids.shape
        feeds = batch.feeds("input_ids", "slot", "item", "positions", "inter", "intra")
        feeds.update(user_slot=slots, attention_mask=np.repeat(batch.attention_mask[:, None, :], a, axis=1))
        _, past = self._run_generator(feeds, self._empty_past(n))
        state = {"past": past, "seen": batch.attention_mask}

        def step(k: int, token: np.ndarray) -> np.ndarray:
            state["seen"] = np.concatenate([state["seen"], np.ones((n, 1), dtype=np.int64)], axis=1)
            feeds = self._span_inputs(batch, token, k + 1)
            feeds.update(user_slot=slots, attention_mask=state["seen"][:, None, :])
            logits, state["past"] = self._run_generator(feeds, state["past"])
            return logits

        return self._greedy(n, max_new_tokens, step)

    def _generate_uncached(self, batch: PromptBatch, slots: np.ndarray, max_new_tokens: int) -> list[list[int]]:
        """The same greedy infilling without a cache: every step re-reads the prompt and the span so
        far (the GLM mask: part A bidirectional, the span causal). For benchmarks and tests."""
        n, a = batch.input_ids.shape
        span: list[np.ndarray] = []

        def step(k: int, token: np.ndarray) -> np.ndarray:
            span.append(token)
            tokens = np.concatenate(span, axis=1)
            b = tokens.shape[1]
            feeds = {name: np.concatenate([getattr(batch, name), value], axis=1)
                     for name, value in self._span_inputs(batch, tokens, 1).items()}
            mask = np.zeros((n, a + b, a + b), dtype=np.int64)
            mask[:, :, :a] = batch.attention_mask[:, None, :]
            mask[:, a:, a:] = np.tril(np.ones((b, b), dtype=np.int64))
            feeds.update(user_slot=slots, attention_mask=mask)
            logits, _ = self._run_generator(feeds, self._empty_past(n))
            return logits

        return self._greedy(n, max_new_tokens, step)

    def _greedy(self, n: int, max_new_tokens: int, step) -> list[list[int]]:
        token = np.full((n, 1), self.special.span_start, dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        out: list[list[int]] = [[] for _ in range(n)]
        for k in range(max_new_tokens):
            token = step(k, token).argmax(-1).astype(np.int64)[:, None]
            for row in np.flatnonzero(~done):
                if int(token[row, 0]) == self.special.span_end:
                    done[row] = True
                else:
                    out[row].append(int(token[row, 0]))
            if done.all():
                break
        return out
