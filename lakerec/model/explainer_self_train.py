"""LoRA self-training of the explainer LLM on its own faithful sentences (`lakerec train-explainer`).

RecSysLLM's explanation task, with honest targets: for each training (user, item) evidence, sample
a few answers from the current explainer, keep one that passes the faithfulness check
(`rec_udf.explanations.check`), and fine-tune LoRA adapters on (prompt -> kept answer); the adapters
are merged into the weights before the ONNX build. Pass rates are measured greedily on held-out
evidence (other users) before and after; `explainer.prepare` ships the better model.
"""
from __future__ import annotations

import json
import logging
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from lakerec.model.explainer import build_onnx
from rec_udf import explanations as ex
from rec_udf.explainer import Explainer, checked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelfTrainConfig:
    samples_per_prompt: int = 4      # sampled rounds after the greedy one, for prompts still without a target
    temperature: float = 0.7
    epochs: int = 1
    lr: float = 1e-4
    lora_r: int = 8
    lora_alpha: int = 16
    batch_size: int = 8
    seed: int = 0


def pass_rate(explainer: Explainer, evidence: Sequence[ex.Evidence], index: ex.CatalogueIndex) -> dict:
    """Greedy explanations of `evidence`: share passing the check, the reasons of those that fail."""
    start = time.time()
    results = explainer.explain(evidence, index)
    reasons: dict[str, int] = {}
    for r in results:
        if r.rejected:
            key = r.rejected.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    passed = sum(r.source == ex.SOURCE_LLM for r in results)
    first = sum(r.source == ex.SOURCE_LLM and r.attempts == 1 for r in results)
    return {"n": len(results), "passed": passed, "pass_rate": passed / max(len(results), 1),
            "pass_rate_first_attempt": first / max(len(results), 1), "reasons": reasons,
            "seconds": round(time.time() - start, 1),
            "examples": [r.text for r in results[:5]]}


def sample_targets(explainer: Explainer, evidence: Sequence[ex.Evidence], index: ex.CatalogueIndex,
                   config: SelfTrainConfig) -> list[tuple[str, str]]:
    """(prompt, answer continuation) for each evidence with an answer that passes the check: the
    explainer's own greedy answer where it passes (what serving decodes), else the first passing one
    of up to `samples_per_prompt` samples."""
    prompts = [explainer.prompt(e) for e in evidence]
    kept: dict[int, str] = {}
    for k in range(config.samples_per_prompt + 1):
        todo = [i for i in range(len(evidence)) if i not in kept]
        if not todo:
            break
        raw = explainer.generate([prompts[i] for i in todo], sample=k > 0, temperature=config.temperature,
                                 seed=config.seed + k)
        for i, text in zip(todo, raw):
            result = checked(evidence[i], ex.answer_prefix(evidence[i]) + text, index)
            if result.source == ex.SOURCE_LLM:
                kept[i] = result.text[len(ex.answer_prefix(evidence[i])):]
        log.info("[train-explainer] self-training targets: %s round, %d/%d prompts have a faithful answer",
                 "sampled" if k else "greedy", len(kept), len(evidence))
    return [(prompts[i], kept[i]) for i in sorted(kept)]


def train_lora(hf_dir: Path, pairs: Sequence[tuple[str, str]], out_dir: Path, config: SelfTrainConfig) -> Path:
    """LoRA on the attention and MLP projections, loss on the answer tokens only; merged and saved."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.05,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"], task_type="CAUSAL_LM"))
    examples = []
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for prompt, answer in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [end]
        examples.append((p + a, [-100] * len(p) + a))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    steps = config.epochs * ((len(examples) + config.batch_size - 1) // config.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / max(steps, 1)))
    rng = random.Random(config.seed)
    model.train()
    step, start = 0, time.time()
    for epoch in range(config.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for b in range(0, len(order), config.batch_size):
            batch = [examples[i] for i in order[b:b + config.batch_size]]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id or 0)
            labels = torch.full((len(batch), width), -100)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (x, y) in enumerate(batch):
                ids[row, :len(x)], labels[row, :len(y)], mask[row, :len(x)] = torch.tensor(x), torch.tensor(y), 1
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 10 == 0 or step == steps:
                log.info("[train-explainer] explainer LoRA: epoch %d step %d/%d loss %.3f (%.0f s)", epoch + 1, step, steps,
                         loss.item(), time.time() - start)
    merged = model.merge_and_unload()
    tmp = out_dir.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def self_train(base_hf: Path, base_onnx: Path, work: Path, train: Sequence[ex.Evidence],
               heldout: Sequence[ex.Evidence], index: ex.CatalogueIndex, config: SelfTrainConfig,
               threads: int | None = None) -> dict:
    """Sample -> keep faithful -> LoRA -> merge -> build; pass rates before/after on `heldout`."""
    report = {"config": asdict(config), "train_prompts": len(train), "heldout_prompts": len(heldout),
              "prompt_version": ex.EXPLAINER_PROMPT_VERSION, "check_version": ex.CHECK_VERSION}
    base = Explainer(base_onnx, threads=threads)
    report["before"] = pass_rate(base, heldout, index)
    log.info("[train-explainer] explainer before self-training: %.1f%% of %d held-out explanations pass the check",
             100 * report["before"]["pass_rate"], len(heldout))
    start = time.time()
    pairs = sample_targets(base, train, index, config)
    report["targets"] = len(pairs)
    report["sampling_seconds"] = round(time.time() - start, 1)
    start = time.time()
    tuned_hf = train_lora(base_hf, pairs, work / "tuned-hf", config)
    report["training_seconds"] = round(time.time() - start, 1)
    tuned_onnx = build_onnx(tuned_hf, work / "tuned-int4", "int4", work / "build-tuned.log")
    report["after"] = pass_rate(Explainer(tuned_onnx, threads=threads), heldout, index)
    log.info("[train-explainer] explainer after self-training: %.1f%% pass", 100 * report["after"]["pass_rate"])
    report["shipped"] = "tuned" if report["after"]["pass_rate"] > report["before"]["pass_rate"] else "base"
    (work / "self_train.json").write_text(json.dumps(report, indent=1))
    return report
