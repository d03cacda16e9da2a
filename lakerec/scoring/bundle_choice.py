"""Which model version a scoring run uses and its bundle, verified on the driver before any
executor starts: the version per A/B variant, the bundle for `score.precision`, and a bundle that
carries the explainer when `score.explainer` is llm."""
from __future__ import annotations

from pathlib import Path

from lakerec import ab
from lakerec.config import Conf
from lakerec.errors import ConfigError
from lakerec.registry import Registry
from rec_udf import bundle as bundle_format
from rec_udf.errors import BundleError
from rec_udf.explainer import refusal as explainer_refusal
from rec_udf.manifest import Manifest

DEFAULT_VARIANT = "default"


def model_for(conf: Conf, variant: str | None, model: str | None) -> str:
    """--model wins; then the variant's model in conf `ab.variants`; then `score.model`."""
    if model:
        return model
    if variant and variant != DEFAULT_VARIANT:
        models = {v.name: v.model for v in ab.variants(conf)}
        if variant not in models:
            raise ConfigError(f"variant {variant!r} is not in conf ab.variants ({', '.join(models)})")
        return models[variant]
    return conf.settings.score.model


def executors_have_gpus(conf: Conf, spark_conf: dict | None = None) -> bool:
    """Whether scoring runs on GPUs: score.device cuda, or (device auto) Spark GPU resources in the
    session's configuration (`spark_conf`, when the caller has a session) or in conf spark.config."""
    device = conf.settings.score.device
    if device != "auto":
        return device == "cuda"
    settings = {**(conf.get("spark.config") or {}), **(spark_conf or {})}
    amount = settings.get("spark.executor.resource.gpu.amount") or settings.get("spark.task.resource.gpu.amount")
    return float(amount or 0) > 0


def cpu_int8_judged(directory: Path) -> bool:
    """Whether an int8 bundle is the one `auto` may serve on CPUs: int8 ranking was judged within 1% of
    fp32's test NDCG@10 for a version serving the ID side alone (its sequence encoder quantized: 1.38x
    faster on one thread at -0.43%, bench/results/sequence_encoder_int8.md), not for an int8 LM user
    encoder; and bundles exported before 2026-12-06 carry the int4 explainer, slower and less faithful."""
    manifest = bundle_format.read_manifest(directory)
    explainer_ok = manifest.explainer is None or manifest.explainer.precision == "fp32"
    return float(manifest.hybrid.lm_weight) == 0 and explainer_ok


def precision_for(conf: Conf, registry: Registry, version: str, spark_conf: dict | None = None) -> str:
    """score.precision, or for auto: on GPU executors fp16 when exported; on CPUs int8 when exported and
    judged (`cpu_int8_judged`); else fp32, the reference."""
    setting = conf.settings.score.precision
    if setting != "auto":
        return setting
    if executors_have_gpus(conf, spark_conf):
        return "fp16" if registry.bundle_dir(version, "fp16").exists() else "fp32"
    int8 = registry.bundle_dir(version, "int8")
    return "int8" if int8.exists() and cpu_int8_judged(int8) else "fp32"


def bundle_for(conf: Conf, model: str, spark_conf: dict | None = None) -> tuple[str, Path, Manifest]:
    """(version, bundle directory, manifest) for a registered version, verified on the driver;
    `spark_conf`: the session's settings, for score.precision auto."""
    registry = Registry.from_conf(conf)
    version = registry.resolve(model).name
    precision = precision_for(conf, registry, version, spark_conf)
    directory = registry.bundle_dir(version, precision)
    if not directory.exists():
        raise ConfigError(f"no {precision} bundle for model {version} at {directory}; run "
                          f"`lakerec export --model {version} --precision {precision}`")
    return version, directory, bundle_format.verify(directory)


def explainer_mode(conf: Conf) -> str:
    """score.explainer (llm | template | off; the settings schema admits no other), off when no rank
    is explained."""
    score = conf.settings.score
    return "off" if score.explain_top_k == 0 else score.explainer


def require_explainer(conf: Conf, bundle_dir: Path, manifest: Manifest) -> None:
    """score.explainer llm needs a bundle that carries the explainer (checked before any scoring)."""
    if explainer_mode(conf) != "llm":
        return
    if not manifest.explainer:
        raise BundleError(f"{bundle_dir / bundle_format.MANIFEST}: this bundle has no explainer, and "
                          "score.explainer is llm; re-export it (`lakerec export --force`) or set "
                          "score.explainer to template or off")
    refused = explainer_refusal(manifest.explainer)
    if refused:
        raise BundleError(f"{bundle_dir / bundle_format.MANIFEST}: {refused}; re-export the bundle (`lakerec export "
                          "--force`: it ships the base explainer until `lakerec train-explainer` runs again)")
