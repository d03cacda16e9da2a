"""The explainer on executors, torch-free: an instruction-tuned LLM exported by onnxruntime-genai
(its own ONNX model, tokenizer, chat template and key/value cache), loaded once per worker.

`Explainer.explain(evidence)` writes one sentence per (user, item) from its evidence
(`rec_udf.explanations`), in batches: the chat prompt plus the answer's opening, greedy decoding
with no repeated 3-gram (a 135M model otherwise loops: "action movie, action movie, ...") until
every row has finished its first sentence (or `max_new_tokens`), then the check. A sentence
that fails the check is replaced by the data-built fallback and marked so.
"""
from __future__ import annotations

import dataclasses
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rec_udf import explanations as ex
from rec_udf.errors import BundleError

CONFIG = "genai_config.json"


@dataclass(frozen=True)
class Explanation:
    text: str
    source: str                 # ex.SOURCE_LLM or ex.SOURCE_FALLBACK
    evidence_item_ids: list[int]
    rejected: str | None = None  # why the LLM's sentence was replaced (None when it was kept)
    generated: str | None = None
    attempts: int = 1            # LLM attempts made (each later one cites the next evidence item)


def refusal(entry) -> str | None:
    """Why a bundle's explainer (its manifest `explainer` entry) may not serve under this runtime, or
    None. A base explainer was never trained on LakeRec's prompt: it gets today's, under today's
    check. A self-trained one learnt one prompt version and what one check version let through
    (version 1's filler), so it serves only under both."""
    if not entry.self_trained:
        return None
    if entry.prompt_version != ex.EXPLAINER_PROMPT_VERSION:
        return (f"its explainer was self-trained on explainer prompts version {entry.prompt_version!r}, this "
                f"LakeRec writes version {ex.EXPLAINER_PROMPT_VERSION!r}")
    trained_under = entry.check_version or "1"
    if trained_under != ex.CHECK_VERSION:
        return (f"its explainer was self-trained under faithfulness check version {trained_under!r} (it learnt "
                f"what that check let through), this LakeRec checks with version {ex.CHECK_VERSION!r}")
    return None


class Explainer:
    """One onnxruntime-genai model directory (as written by `model_export.explainer`)."""

    def __init__(self, directory: str | Path, device: str = "cpu", threads: int | None = None, gpu_id: int | None = None,
                 max_new_tokens: int = 40, batch_size: int = 8, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 3):
        import onnxruntime_genai as og          # executors only; imported here so tests without it can run
        directory = Path(directory)
        if not (directory / CONFIG).is_file():
            raise BundleError(f"{directory}: no {CONFIG}; not an onnxruntime-genai explainer")
        config = og.Config(str(directory))
        config.clear_providers()
        if device == "cuda":
            config.append_provider("cuda")
            config.set_provider_option("cuda", "device_id", str(gpu_id or 0))
        if threads:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        try:
            self.model = og.Model(config)
        except Exception as exc:
            raise BundleError(f"{directory}: onnxruntime-genai cannot load the explainer ({exc})") from None
        self.og, self.tokenizer = og, og.Tokenizer(self.model)
        self.eos = int(json.loads((directory / CONFIG).read_text())["model"]["eos_token_id"])
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.tokens_generated = 0

    def prompt(self, evidence: ex.Evidence, noun: str = "movie", cited: int = 0) -> str:
        messages = json.dumps(ex.explanation_messages(evidence, noun))
        return (self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
                + ex.answer_prefix(evidence, cited))

    def generate(self, prompts: Sequence[str], *, sample: bool = False, temperature: float = 0.8,
                 seed: int | None = None, stop_at_sentence: bool = True) -> list[str]:
        """Raw continuations of `prompts` (greedy unless `sample`), batch by batch; a batch stops once
        every row has finished its first sentence (stop_at_sentence) or at max_new_tokens."""
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            out += self._generate_batch(list(prompts[start:start + self.batch_size]), sample, temperature, seed,
                                        stop_at_sentence)
        return out

    def _generate_batch(self, prompts: list[str], sample: bool, temperature: float, seed: int | None,
                        stop_at_sentence: bool) -> list[str]:
        og = self.og
        tokens = self.tokenizer.encode_batch(prompts)
        length = tokens.shape()[1]
        params = og.GeneratorParams(self.model)
        options = dict(max_length=length + self.max_new_tokens, batch_size=len(prompts), do_sample=sample,
                       repetition_penalty=self.repetition_penalty, no_repeat_ngram_size=self.no_repeat_ngram_size)
        if sample:
            options.update(temperature=temperature, top_p=0.95, top_k=50)
            if seed is not None:
                options["random_seed"] = seed
        params.set_search_options(**options)
        generator = og.Generator(self.model, params)
        generator.append_tokens(tokens)
        stream = [""] * len(prompts)
        done = [False] * len(prompts)
        steps = 0
        while not generator.is_done() and not all(done) and steps < self.max_new_tokens:
            generator.generate_next_token()
            steps += 1
            # a row is done once its text holds a finished first sentence or a newline
            if stop_at_sentence and steps % 4 == 0:
                for row in range(len(prompts)):
                    if not done[row]:
                        stream[row] = self.tokenizer.decode(generator.get_sequence(row)[length:])
                        done[row] = "\n" in stream[row] or ex.first_sentence("x " + stream[row]) is not None
        out = []
        for row in range(len(prompts)):
            tokens = list(generator.get_sequence(row)[length:])
            if self.eos in tokens:          # a finished row is padded with end tokens: count the real ones
                tokens = tokens[:tokens.index(self.eos)]
            self.tokens_generated += len(tokens)
            out.append(self.tokenizer.decode(tokens))
        return out

    def explain(self, evidence: Sequence[ex.Evidence], index: ex.CatalogueIndex, noun: str = "movie",
                attempts: int = ex.EVIDENCE_ITEMS) -> list[Explanation]:
        """One checked explanation per evidence. Where the LLM's sentence fails the check, another
        greedy attempt opens by citing the next evidence item instead (one attempt per evidence
        item, at most `attempts`); a sentence that still fails is replaced by the fallback.

        Attempts share one queue: a retry goes back in line behind the first attempts still waiting,
        so every explainer call but the last decodes a full batch. (Retries in batches of their own
        left calls of 1-3 rows, which cost a decoding step as much as a full batch: the explainer is
        bound by reading its weights, not by the rows it decodes.)"""
        attempts_allowed = min(attempts, ex.EVIDENCE_ITEMS)
        out: list[Explanation | None] = [None] * len(evidence)
        queue = deque((i, 0) for i in range(len(evidence)))        # (evidence index, evidence item cited)
        while queue:
            batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
            raw = self._generate_batch([self.prompt(evidence[i], noun, cited=cited) for i, cited in batch],
                                       sample=False, temperature=0.0, seed=None, stop_at_sentence=True)
            for (i, cited), text in zip(batch, raw):
                attempt = checked(evidence[i], ex.answer_prefix(evidence[i], cited) + text, index)
                if cited == 0:
                    out[i] = attempt
                else:   # a later attempt replaces the first only when it passes; the first's reason is kept
                    out[i] = dataclasses.replace(attempt if attempt.source == ex.SOURCE_LLM else out[i],
                                                 attempts=cited + 1)
                if (attempt.source == ex.SOURCE_FALLBACK and cited + 1 < attempts_allowed
                        and len(evidence[i].items) > cited + 1):
                    queue.append((i, cited + 1))
        return out


def checked(evidence: ex.Evidence, generated: str, index: ex.CatalogueIndex) -> Explanation:
    """The generated answer's first sentence when it passes the check, else the fallback sentence."""
    sentence = ex.first_sentence(generated)
    reason = "unfinished" if sentence is None else ex.check(sentence, evidence, index)
    if reason is None:
        return Explanation(sentence, ex.SOURCE_LLM, evidence.item_ids, None, generated)
    return Explanation(ex.fallback_sentence(evidence), ex.SOURCE_FALLBACK, evidence.item_ids, reason, generated)


def template_explanation(evidence: ex.Evidence) -> Explanation:
    """`score.explainer: template`: the data-built sentence, no LLM."""
    return Explanation(ex.fallback_sentence(evidence), ex.SOURCE_FALLBACK, evidence.item_ids, None)
