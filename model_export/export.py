"""A registered model version -> one bundle directory per precision (see rec_udf/bundle.py).

  <bundles_dir>/<version>/<precision>/
    manifest.json           format, model version, backbone, LoRA, template, tokenizer, opset,
                            graph inputs/outputs, item count, sha256 + size of every file,
                            training metrics, torch-vs-ONNX parity on fixed prompts
    sequence_encoder.onnx   user_encoder.onnx   generator.onnx      (see graphs.py)
    item_matrix.npy         (n_items, id_dim + lm_dim) float32 [ID-side item embedding ; item text vector],
                            computed once with the torch model (lakerec.model.hybrid)
    item_ids.npy            catalogue order of those rows
    items.parquet           item fields (explanations name items by title)
    tokenizer.json          the tokenizer, special tokens resolved
    explainer/              the explainer LLM as onnxruntime-genai builds it (genai_config.json,
                            model.onnx + weights, tokenizer), fp32 or int4 for CPU bundles, fp16 for GPU ones

Each bundle is written to a temporary folder, verified by the runtime's own loader, and renamed into
place, so a bundle is whole or absent. Re-exporting a version replaces its bundle in one rename.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lakerec import logs
from lakerec.model import hybrid
from lakerec.model.examples import item_examples
from lakerec.registry import bundle_path
from lakerec.model.store import load_catalogue, load_model, model_fingerprint
from model_export import graphs, parity
from model_export.precision import PRECISIONS, convert
from rec_udf import bundle as bundle_format
from rec_udf import manifest as mf
from rec_udf import runtime
from rec_udf.catalogue import write_catalogue
from rec_udf.glm_input import MAX_INTER, MAX_INTRA, SpecialTokens
from rec_udf.recommender import Recommender
from rec_udf.task_prompts import EXPLANATION_TEMPLATE, SCORING_TEMPLATE


log = logs.get(__name__).info


def export_bundles(model_dir: Path, bundles_dir: Path, precisions=("fp32",), parity_users: int = 64,
                   threads: int | None = None, explainer=None) -> dict[str, dict]:
    """Export every precision asked for; returns {precision: {"path", "parity", "seconds", "bytes"}}.
    `explainer`: a lakerec.model.explainer.Prepared to copy into each bundle (None: none)."""
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        from lakerec.errors import ConfigError
        raise ConfigError(f"unknown precision {unknown}; choose from {', '.join(PRECISIONS)}")
    start = time.time()
    model, id_model, info, tokenizer, item_ids = load_model(model_dir)
    if "hybrid" not in info:
        from lakerec.errors import ConfigError
        raise ConfigError(f"{model_dir / 'model.json'}: trained before the hybrid score (no 'hybrid' entry); "
                          "its heads are not what the bundle format 2 graphs compute: train a new version "
                          "(lakerec train)")
    items = load_catalogue(model_dir)
    fingerprint = model_fingerprint(model_dir)
    special = SpecialTokens.resolve(tokenizer)
    reference = copy.deepcopy(model).eval()          # unmerged: parity also checks the LoRA merge
    with torch.no_grad():
        text_items = reference.item_matrix(item_examples(tokenizer, special, items, unified=False), special.pad)
    item_matrix = hybrid.item_matrix(id_model.score_items().numpy(), text_items.numpy())
    prompts, sequences = parity.parity_users(items, info["template"], n=parity_users)
    expected = parity.torch_user_vectors(reference, id_model, tokenizer, special, item_ids, prompts, sequences)
    log(f"[export] {model_dir.name}: item matrix {item_matrix.shape}, torch reference on {len(prompts)} prompts "
        f"({time.time() - start:.0f}s)")

    results = {}
    with tempfile.TemporaryDirectory(prefix="lakerec-export-") as work:
        work = Path(work)
        specs = graphs.export_graphs(model, id_model, work)
        log(f"[export] ONNX graphs exported (opset {graphs.OPSET}, {time.time() - start:.0f}s)")
        for precision in precisions:
            t0 = time.time()
            final = bundle_path(bundles_dir, info["version"], precision)
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = final.parent / f".{precision}.tmp-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            for spec in specs.values():
                convert(work / spec.file, staging / spec.file, precision)
            np.save(staging / "item_matrix.npy", item_matrix)
            np.save(staging / "item_ids.npy", np.asarray(item_ids, dtype=np.int64))
            write_catalogue(staging / "items.parquet", items)
            tokenizer.save(str(staging / bundle_format.TOKENIZER))
            copied = (_copy_explainer(explainer, precision, staging)
                      if explainer is not None and explainer.covers(precision) else None)
            manifest = _manifest(info, precision, specs, model, id_model, special, item_matrix, copied, fingerprint)
            manifest = _write_manifest(staging, manifest)
            recommender = Recommender.open(staging, prefer="cpu", threads=threads)
            measured = mf.Parity(reference="torch fp32, LoRA unmerged",
                                 **parity.compare(expected, recommender, prompts, sequences))
            manifest = _write_manifest(staging, dataclasses.replace(manifest, parity=measured))
            bundle_format.verify(staging)
            _replace(staging, final)
            size = sum(f.stat().st_size for f in final.rglob("*") if f.is_file())
            results[precision] = {"path": str(final), "parity": measured, "seconds": time.time() - t0,
                                  "bytes": size}
            log(f"[export] {precision}: {final} ({size / 1e6:.0f} MB), parity max|diff| "
                f"{measured.max_abs_diff:.2e}, top-10 identical {measured.top10_identical:.1%}")
    return results


def _manifest(info: dict, precision: str, specs: dict, model, id_model, special: SpecialTokens,
              item_matrix: np.ndarray, explainer: mf.ExplainerEntry | None, fingerprint: str) -> mf.Manifest:
    backbone = model.backbone
    heads = backbone.layers[0].attention.heads
    graph_entries = {name: mf.Graph(**spec.to_dict()) for name, spec in specs.items()}
    graph_entries["generator"] = dataclasses.replace(graph_entries["generator"], layers=len(backbone.layers),
                                                     heads=heads, head_dim=backbone.hidden_size // heads)
    llm = info["llm_config"]
    return mf.Manifest(
        format=mf.FORMAT, format_version=mf.FORMAT_VERSION, model_version=info["version"], precision=precision,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        backbone={**(info.get("backbone") or {}), "kind": backbone.kind, "hidden_size": backbone.hidden_size,
                  "layers": len(backbone.layers), "vocab_size": backbone.word_embeddings.num_embeddings},
        lora=mf.Lora(r=llm["lora_r"], alpha=llm["lora_alpha"], dropout=llm["lora_dropout"],
                     targets=llm["lora_targets"] or list(backbone.lora_targets), merged=True),
        template=mf.Template(**info["template"]),
        prompt_form="unified",
        hybrid=mf.Hybrid(lm_weight=float(model.lm_weight), temperature=float(model.config.temperature),
                         id_dim=int(id_model.score_dim), sasrec_dim=int(id_model.sasrec.config.dim),
                         lm_dim=int(model.config.dim), text_weight=float(id_model.text_weight),
                         serving=hybrid.serving_label(model.lm_weight, id_model.text_weight)),
        tasks=mf.Tasks(scoring=mf.TaskTemplate(name=SCORING_TEMPLATE[0], text=SCORING_TEMPLATE[1]),
                       explanation=mf.TaskTemplate(name=EXPLANATION_TEMPLATE[0], text=EXPLANATION_TEMPLATE[1])),
        tokenizer=mf.TokenizerEntry(file=bundle_format.TOKENIZER, special_tokens=special),
        opset=graphs.OPSET,
        exporter=f"torch.onnx (TorchScript) torch {torch.__version__}",
        onnxruntime_built_with=runtime.ort.__version__,
        graphs=mf.Graphs(**graph_entries),
        limits=mf.Limits(max_positions=backbone.max_positions, max_inter=MAX_INTER, max_intra=MAX_INTRA,
                         id_max_len=id_model.config.max_len),
        items=mf.Items(count=int(len(item_matrix)), dim=int(item_matrix.shape[1]), ids="item_ids.npy",
                       matrix="item_matrix.npy", catalogue="items.parquet",
                       matrix_note="computed with the torch fp32 model for every precision"),
        training={"metrics": info.get("metrics"), "lineage": info.get("lineage"), "profile": info.get("profile")},
        explainer=explainer, model_fingerprint=fingerprint)


def _copy_explainer(explainer, precision: str, staging: Path) -> mf.ExplainerEntry:
    from lakerec.model.explainer import FOR_BUNDLE, PRECISIONS
    kind = FOR_BUNDLE[precision]
    shutil.copytree(explainer.directories[kind], staging / "explainer", ignore=shutil.ignore_patterns(".*"))
    return mf.ExplainerEntry(directory="explainer", precision=kind, execution=PRECISIONS[kind][1], **explainer.info)


def _write_manifest(directory: Path, manifest: mf.Manifest) -> mf.Manifest:
    """Write the manifest with `files` listing every other file now in `directory`; returns what was written."""
    manifest = dataclasses.replace(manifest, files=bundle_format.file_entries(directory))
    (directory / bundle_format.MANIFEST).write_text(manifest.to_json())
    return manifest


def _replace(staging: Path, final: Path) -> None:
    """Swap the verified staging folder into place; an older bundle there is removed after."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
