"""ONNX Runtime sessions for a bundle: which execution provider, how many threads.

`choose_device` picks CUDA when the onnxruntime build has the CUDA provider AND a GPU is assigned
to this task (Spark's task resources, `spark.task.resource.gpu.amount`) or, outside Spark, visible
to the process; otherwise CPU. The provider a session really runs on is read back from the session
(`active_provider`): ONNX Runtime silently falls back to CPU when CUDA cannot start, and a job that
asked for a GPU must be able to notice.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from rec_udf.errors import BundleError

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


@dataclass(frozen=True)
class Device:
    kind: str                 # "cuda" or "cpu"
    gpu_id: int | None = None
    threads: int = 1          # intra-op threads on CPU (the task's cores)


def task_resources() -> tuple[list[str], int | None]:
    """(GPU addresses assigned to the current Spark task, its CPU count); ([], None) outside a task."""
    try:
        from pyspark import TaskContext
    except ImportError:
        return [], None
    context = TaskContext.get()
    if context is None:
        return [], None
    gpus = context.resources().get("gpu")
    cpus = context.cpus() if hasattr(context, "cpus") else None
    return (list(gpus.addresses) if gpus is not None else []), cpus


def gpu_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


def choose_device(prefer: str = "auto", threads: int | None = None) -> Device:
    """prefer: auto (CUDA when assigned/visible), cuda, or cpu."""
    if prefer not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be auto, cuda or cpu, not {prefer!r}")
    gpus, task_cpus = task_resources()
    threads = threads or task_cpus or max(1, os.cpu_count() or 1)
    assigned = gpus or (task_cpus is None and gpu_visible())
    # an explicit "cuda" is honoured and checked after the session starts (Recommender reads the provider back)
    if prefer == "cuda" or (prefer == "auto" and assigned and CUDA in ort.get_available_providers()):
        return Device("cuda", int(gpus[0]) if gpus else 0, threads)
    return Device("cpu", None, threads)

def session_options(device: Device) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = device.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3            # errors only; fallbacks are detected by `active_provider`
    return options


def providers(device: Device) -> list:
    if device.kind == "cuda":
        return [(CUDA, {"device_id": device.gpu_id or 0}), CPU]
    return [CPU]


def open_session(path: Path, device: Device) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(device), providers=providers(device))
    except Exception as exc:          # onnxruntime raises its own exception types for a bad graph
        raise BundleError(f"{path}: ONNX Runtime cannot load this graph ({exc})") from None


def active_provider(session: ort.InferenceSession) -> str:
    return session.get_providers()[0]
