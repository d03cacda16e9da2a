"""A bundle loaded for recommending, torch-free: prompts -> user vectors -> top-N items ->
explanations. One `Recommender` per worker process holds the bundle's ONNX Runtime sessions (opened on first use).

Inputs come as the `prompts` table has them: the prompt text with its entity spans, and the user's
item ids oldest first (the ID model's sequence). The parts: `rec_udf.prompt_inputs` (tokens and
padded batches), `rec_udf.item_lookup` (item ids -> catalogue indices, the ID model's sequences),
`rec_udf.retrieval` (top k), `rec_udf.generation` (the GLM's infilling); explanations come from
`rec_udf.explanations` (evidence, check) and `rec_udf.explainer` (the explainer LLM).
"""
from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from rec_udf import bundle as bundle_format
from rec_udf import explanations as ex
from rec_udf import runtime, textualizer
from rec_udf.errors import BundleError
from rec_udf.explainer import Explainer, template_explanation   # onnxruntime-genai loads only in Explainer()
from rec_udf.explainer import refusal as explainer_refusal
from rec_udf.generation import Infilling
from rec_udf.glm_input import GLMExample
from rec_udf.item_lookup import ItemLookup
from rec_udf.prompt_inputs import PromptInputs
from rec_udf.retrieval import top_k
from rec_udf.task_prompts import EXPLANATION_TEMPLATE, SCORING_TEMPLATE, task_sentence
from rec_udf.textualizer import Prompt


# Users per ONNX Runtime call under `score.batch_size: auto`, from bench/scoring.py's sweeps (one
# thread per task): the LM pass on a CPU is fastest in small batches (4: 23.9 users/s, 32: 19.8);
# a bundle serving the ID side alone (a small sequence encoder, then one matrix product) pays
# per-call overhead instead (2026-11-25: 1: 1,088, 4: 2,206, 16: 3,161, 64: 3,290, 256: 2,772 users/s);
# a GPU wants large ones.
LM_BATCH_CPU = 4
ID_BATCH_CPU = 64
GPU_BATCH = 256


def auto_batch_size(lm_weight: float, on_gpu: bool) -> int:
    """`score.batch_size: auto` for a bundle whose hybrid weighs the LM term by `lm_weight`."""
    if on_gpu:
        return GPU_BATCH
    return ID_BATCH_CPU if lm_weight == 0 else LM_BATCH_CPU


class LazySessions(dict):
    """Graph name -> ONNX Runtime session, each opened (its file's sha256 checked first) on first use. A
    bundle serving the ID side alone never runs its LM graphs (user encoder and generator: ~90 + ~135 MB
    of fp32 weights), so a worker scoring it does not pay their hashing, start-up or memory."""

    def __init__(self, bundle: bundle_format.Bundle, device: runtime.Device):
        super().__init__()
        self.bundle, self.device = bundle, device

    def __missing__(self, name: str):
        session = self[name] = runtime.open_session(self.bundle.graph_path(name), self.device)
        return session


class Recommender:
    """One loaded bundle with its ONNX Runtime sessions (load once per worker process; each graph opens on first use)."""

    def __init__(self, bundle: bundle_format.Bundle, device: runtime.Device, allow_cpu_fallback: bool = True,
                 explainer: bool = False, max_new_tokens: int = 40, explain_batch_size: int = 8):
        self.bundle, self.device = bundle, device
        manifest = bundle.manifest
        self.sessions = LazySessions(bundle, device)
        self.provider = runtime.active_provider(self.sessions["sequence_encoder"])
        if device.kind == "cuda" and self.provider != runtime.CUDA and not allow_cpu_fallback:
            raise BundleError(f"{bundle.directory}: asked for the CUDA execution provider, ONNX Runtime started "
                              f"{self.provider} (no usable GPU or CUDA libraries); allow the CPU fallback in "
                              "conf to run anyway")
        for name, task, (template_name, text) in (("scoring", manifest.tasks.scoring, SCORING_TEMPLATE),
                                                  ("explanation", manifest.tasks.explanation, EXPLANATION_TEMPLATE)):
            if (task.name, task.text) != (template_name, text):
                raise BundleError(f"{bundle.directory / bundle_format.MANIFEST}: tasks.{name} is {asdict(task)}, "
                                  f"this runtime's template is {template_name!r} {text!r}")
        self.inputs = PromptInputs(bundle.tokenizer, bundle.special,
                                   {int(item): i for i, item in enumerate(bundle.item_ids)},
                                   manifest.prompt_form == "unified")
        self.items = ItemLookup(bundle.item_ids)
        self.noun = textualizer.item_noun(manifest.template.spec)
        self.lm_weight = float(manifest.hybrid.lm_weight)
        self.lm_dim = int(manifest.hybrid.lm_dim)
        # explanation evidence lives in SASRec's item space: the first columns of the ID side
        hybrid = manifest.hybrid
        self.id_item_vectors = bundle.item_matrix[:, :int(hybrid.sasrec_dim or hybrid.id_dim)]
        self.title_index = ex.CatalogueIndex.of(bundle.catalogue)
        self.explainer = None
        if explainer:
            refused = manifest.explainer and explainer_refusal(manifest.explainer)
            if refused:
                raise BundleError(f"{bundle.directory / bundle_format.MANIFEST}: {refused}; re-export the bundle")
            # the explainer runs where it was built for (manifest explainer.execution): cuda only on a GPU
            directory = bundle.explainer_dir()
            on_gpu = device.kind == "cuda" and manifest.explainer.execution == "cuda"
            self.explainer = Explainer(directory, device="cuda" if on_gpu else "cpu", threads=device.threads,
                                       gpu_id=device.gpu_id, max_new_tokens=max_new_tokens,
                                       batch_size=explain_batch_size)

    @classmethod
    def open(cls, directory: str | Path, prefer: str = "auto", threads: int | None = None,
             allow_cpu_fallback: bool = True, explainer: bool = False, max_new_tokens: int = 40,
             explain_batch_size: int = 8) -> "Recommender":
        return cls(bundle_format.load(directory), runtime.choose_device(prefer, threads), allow_cpu_fallback,
                   explainer, max_new_tokens, explain_batch_size)

    @property
    def reads_prompts(self) -> bool:
        """Whether scoring reads the prompt text: a bundle serving the ID side alone (lm_weight 0) ranks
        from the item sequence, so its callers need not tokenize prompts."""
        return self.lm_weight != 0

    @property
    def batch_size(self) -> int:
        """Users per ONNX Runtime call when `score.batch_size` is auto: see `auto_batch_size`."""
        return auto_batch_size(self.lm_weight, self.provider == runtime.CUDA)

    # --- inputs --------------------------------------------------------------------------------
    @property
    def max_positions(self) -> int:
        """Longest part A the backbone has position embeddings for (longer prompts are refused)."""
        return self.bundle.manifest.limits.max_positions

    def example(self, prompt: Prompt, suffix: str = "") -> GLMExample:
        return self.inputs.example(prompt, suffix)

    def catalogue_index(self, item_ids) -> np.ndarray:
        """Catalogue index of each item id (any int array), -1 for ids the model does not know."""
        return self.items.index(item_ids)

    def id_sequences(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """The ID model's input: (B, id_max_len) catalogue index + 1, newest last, left-padded with 0."""
        return self.items.id_sequences(sequences, self.bundle.id_max_len)

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

    def encode(self, examples: Sequence[GLMExample],
               sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(hybrid user vectors, user slots): the slots are the sequence encoder's output, reusable by
        `explain`. A bundle that serves the ID model alone (lm_weight 0) skips the LM pass: its user
        vector is [ID-side state ; 0], exactly what the user encoder would return."""
        slots, states = self.id_model(sequences)
        if not self.reads_prompts:
            return np.concatenate([states, np.zeros((len(states), self.lm_dim), dtype=states.dtype)], axis=1), slots
        batch = self.inputs.batch(examples)
        feeds = batch.feeds("input_ids", "slot", "item", "positions", "inter", "intra", "attention_mask")
        feeds.update(user_slot=slots, id_state=states)
        return self.sessions["user_encoder"].run(None, feeds)[0], slots

    def top_k(self, user_vectors: np.ndarray, k: int, exclude: Sequence[Sequence[int]] = (),
              blocked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(catalogue indices, scores) of each user's k best items: see `rec_udf.retrieval.top_k`."""
        if not self.reads_prompts:      # [ID-side state ; 0]: the LM columns add nothing to any score
            return top_k(user_vectors[:, :self.id_columns], self.id_item_matrix, self.items, k, exclude, blocked)
        return top_k(user_vectors, self.bundle.item_matrix, self.items, k, exclude, blocked)

    @functools.cached_property
    def id_columns(self) -> int:
        """Width of the ID side of a hybrid vector (the LM term's lm_dim columns come last)."""
        return self.bundle.item_matrix.shape[1] - self.lm_dim

    @functools.cached_property
    def id_item_matrix(self) -> np.ndarray:
        """The item matrix's ID-side columns, contiguous (a bundle serving the ID side alone ranks with these)."""
        return np.ascontiguousarray(self.bundle.item_matrix[:, :self.id_columns])

    # --- explanations --------------------------------------------------------------------------
    def evidence(self, item: int, sequence: Sequence[int], ratings=None, prefer_shared_genres: bool = True) -> ex.Evidence:
        """The evidence for explaining catalogue item `item` to a user with this item-id sequence
        (oldest first) and, when the prompts table has them, the user's ratings of it.
        prefer_shared_genres False: closeness and ratings alone (before 2026-12-06; benchmarks)."""
        index = self.catalogue_index(sequence)
        known = index >= 0
        rated = [None] * len(index) if ratings is None else [None if r is None else float(r) for r in ratings]
        history = index[known]
        history_ratings = [r for r, k in zip(rated, known) if k]
        catalogue = self.bundle.catalogue
        genres = set(ex.genre_names(catalogue[item].get("genres")))
        shares = ([bool(genres.intersection(ex.genre_names(catalogue[h].get("genres")))) for h in history]
                  if prefer_shared_genres else None)
        chosen = ex.select_evidence(self.id_item_vectors, item, history, history_ratings, shares_genre=shares)
        return ex.build_evidence(catalogue[item], [catalogue[history[c]] for c in chosen],
                                 [history_ratings[c] for c in chosen], [catalogue[h] for h in history])

    def explanations(self, evidence: Sequence[ex.Evidence], llm: bool = True, attempts: int = ex.EVIDENCE_ITEMS) -> list:
        """Checked LLM sentences (fallback where `attempts` fail), or the data-built sentences (llm False)."""
        if not llm:
            return [template_explanation(e) for e in evidence]
        if self.explainer is None:
            raise BundleError(f"{self.bundle.directory}: this recommender was opened without its explainer")
        return self.explainer.explain(evidence, self.title_index, self.noun, attempts=attempts)

    # --- the GLM's own blank infilling (RecSysLLM's explanation task; benchmarks and tests) ---------
    @functools.cached_property
    def infilling(self) -> Infilling:
        return Infilling(self.sessions["generator"], self.bundle.manifest.graphs.generator, self.bundle.special)

    def explanation_prompts(self, items: Sequence[int]) -> list[str]:
        catalogue = self.bundle.catalogue
        return [task_sentence(EXPLANATION_TEMPLATE[1], noun=self.noun, item=catalogue[i]) for i in items]

    def explain(self, prompts: Sequence[Prompt], sequences: Sequence[Sequence[int]], items: Sequence[int],
                max_new_tokens: int = 24, use_cache: bool = True, slots: np.ndarray | None = None) -> list[str]:
        """Why each user would like the given catalogue item: greedy infilling of the answer blank.
        `slots`: the users' sequence-encoder outputs when already computed (`encode`)."""
        batch = self.inputs.prompt_batch(prompts, self.explanation_prompts(items))
        slots = self.user_slots(sequences) if slots is None else slots
        tokens = self.infilling.generate(batch, slots, max_new_tokens, use_cache)
        return [self.inputs.tokenizer.decode(t) for t in tokens]
