"""Precision variants of an exported fp32 graph (ONNX Runtime's own tools).

fp32  the reference, as exported.
fp16  weights and activations in half precision for GPU executors; graph inputs and outputs stay
      fp32 (keep_io_types), so the runtime feeds every variant the same arrays.
int8  dynamic quantization for CPU executors (onnxruntime.quantization.quantize_dynamic): MatMul
      weights in int8 per output channel, activations quantized on the fly. Per-channel scales
      halved the user vectors' error against fp32 compared with per-tensor ones, and quantizing the
      embedding Gathers as well made it worse (measured on the parity prompts, see docs/bundle.md).
      The sequence encoder too: for a version serving the ID side alone it is all of ranking's
      compute, and int8 ran it 1.38x faster on one thread at test NDCG@10 -0.43% of fp32's
      (bench/results/sequence_encoder_int8.md, 2026-12-06).

The sequence encoder stays fp32 in the fp16 variant: ONNX Runtime 1.31's CPU graph optimizer crashes
on its fp16 form.
"""
from __future__ import annotations

import shutil
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8")


KEEP_FP32_IN_FP16 = ("sequence_encoder.onnx",)


def convert(source: Path, target: Path, precision: str) -> None:
    if precision == "fp32" or (precision == "fp16" and source.name in KEEP_FP32_IN_FP16):
        shutil.copyfile(source, target)
    elif precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
        model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        onnx.save(model, str(target))
    elif precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
    else:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
