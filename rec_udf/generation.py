"""The GLM's own blank infilling with the bundle's generator graph (RecSysLLM's explanation task;
benchmarks and tests; the explanations users see come from `rec_udf.explainer`): greedy decoding
with the key/value cache, or without it, every step re-reading the prompt and the span so far."""
from __future__ import annotations

import numpy as np

from rec_udf.glm_input import MAX_INTRA, SpecialTokens
from rec_udf.manifest import Graph
from rec_udf.prompt_inputs import PromptBatch


class Infilling:
    """Greedy infilling of the answer blank with one generator session (key/value cache layout from
    the manifest's generator entry)."""

    def __init__(self, session, graph: Graph, special: SpecialTokens):
        self.session, self.special = session, special
        self.layers, self.heads, self.head_dim = graph.layers, graph.heads, graph.head_dim

    def generate(self, batch: PromptBatch, slots: np.ndarray, max_new_tokens: int,
                 use_cache: bool = True) -> list[list[int]]:
        """Token ids generated for each row's blank, until span_end or max_new_tokens."""
        step = self._generate_cached if use_cache else self._generate_uncached
        return step(batch, slots, max_new_tokens)

    def _run(self, feeds: dict, past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        for i in range(self.layers):
            feeds[f"past_key_{i}"], feeds[f"past_value_{i}"] = past[2 * i], past[2 * i + 1]
        logits, *present = self.session.run(None, feeds)
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
        _, past = self._run(feeds, self._empty_past(n))
        state = {"past": past, "seen": batch.attention_mask}

        def step(k: int, token: np.ndarray) -> np.ndarray:
            state["seen"] = np.concatenate([state["seen"], np.ones((n, 1), dtype=np.int64)], axis=1)
            feeds = self._span_inputs(batch, token, k + 1)
            feeds.update(user_slot=slots, attention_mask=state["seen"][:, None, :])
            logits, state["past"] = self._run(feeds, state["past"])
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
            logits, _ = self._run(feeds, self._empty_past(n))
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
