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
from rec_udf.explanations import CHECK_VERSION, EXPLAINER_PROMPT_VERSION
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


# score.precision auto: the bundle made for the executors' kind, else the fp32 reference. On CPUs the
# int8 one: its ranking graphs run int8 MatMuls (the sequence encoder 1.38x faster on one thread at test
# NDCG@10 -0.43% of fp32's, bench/results/sequence_encoder_int8.md) and it carries the same fp32 explainer.
AUTO_PRECISIONS = {"cpu": ("int8", "fp32"), "gpu": ("fp16", "fp32")}


def executors_have_gpus(conf: Conf) -> bool:
    """Whether scoring runs on GPUs: score.device cuda, or Spark GPU resources in spark.config."""
    spark_conf = conf.get("spark.config") or {}
    amount = spark_conf.get("spark.executor.resource.gpu.amount") or spark_conf.get("spark.task.resource.gpu.amount")
    return conf.settings.score.device == "cuda" or float(amount or 0) > 0


def precision_for(conf: Conf, registry: Registry, version: str) -> str:
    """score.precision, or for auto the first of AUTO_PRECISIONS for the executors' kind that was exported."""
    setting = conf.settings.score.precision
    if setting != "auto":
        return setting
    wanted = AUTO_PRECISIONS["gpu" if executors_have_gpus(conf) else "cpu"]
    return next((p for p in wanted if registry.bundle_dir(version, p).exists()), wanted[-1])


def bundle_for(conf: Conf, model: str) -> tuple[str, Path, Manifest]:
    """(version, bundle directory, manifest) for a registered version, verified on the driver."""
    registry = Registry.from_conf(conf)
    version = registry.resolve(model).name
    precision = precision_for(conf, registry, version)
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
    version = manifest.explainer.prompt_version
    if version != EXPLAINER_PROMPT_VERSION:
        raise BundleError(f"{bundle_dir / bundle_format.MANIFEST}: explainer.prompt_version is {version!r}, this "
                          f"LakeRec writes explainer prompts version {EXPLAINER_PROMPT_VERSION!r}; re-export the "
                          "bundle (`lakerec export --force`)")
    trained_under = manifest.explainer.check_version or "1"
    if manifest.explainer.self_trained and trained_under != CHECK_VERSION:
        raise BundleError(f"{bundle_dir / bundle_format.MANIFEST}: its explainer was self-trained under "
                          f"faithfulness check version {trained_under!r} (it learnt what that check let through), "
                          f"this LakeRec checks with version {CHECK_VERSION!r}; re-export the bundle "
                          "(`lakerec export --force`: it ships the base explainer until `lakerec train-explainer` "
                          "runs again)")
