"""`lakerec export [--model champion|VERSION] [--precision fp32,fp16,int8] [--force]`: a registered model
version -> verified ONNX bundles (model_export/export.py; format in docs/bundle.md). Needs no Spark
session. A bundle that already exists for the version and verifies is kept (re-runs are no-ops)
unless --force. Each bundle carries the explainer LLM (`export.explainer`, default true;
lakerec/model/explainer.py): the self-trained one when `lakerec train-explainer` showed it better."""
from __future__ import annotations

from lakerec.model import explainer as explainer_model
from lakerec.registry import Registry
from lakerec.model.store import model_fingerprint
from model_export.export import export_bundles
from rec_udf import bundle as bundle_format
from rec_udf.errors import BundleError


def run(conf, model: str = "champion", precisions: list[str] | None = None, force: bool = False) -> dict:
    registry = Registry.from_conf(conf)
    model_dir = registry.resolve(model)
    version = model_dir.name
    precisions = precisions or list(conf.get("export.precisions"))
    root = registry.bundles_root
    fingerprint = model_fingerprint(model_dir)
    explainer = None
    if conf.get("export.explainer"):
        wanted = sorted({explainer_model.FOR_BUNDLE[p] for p in precisions if p in explainer_model.FOR_BUNDLE})
        explainer = explainer_model.prepare(conf.cache_dir, wanted)
    todo = []
    for precision in precisions:
        path = registry.bundle_dir(version, precision)
        if path.exists() and not force:
            try:
                manifest = bundle_format.verify(path)
            except BundleError as exc:
                print(f"{version} {precision}: existing bundle is unusable ({exc}); exporting again")
            else:
                has = manifest.explainer
                same = has is not None and explainer is not None and has.describes(explainer.info) and \
                    has.precision == explainer_model.FOR_BUNDLE.get(precision)
                if explainer is not None and not same:
                    print(f"{version} {precision}: {path} has {'no' if has is None else 'another'} explainer; "
                          "exporting again")
                elif manifest.model_fingerprint == fingerprint:
                    print(f"{version} {precision}: {path} exists and verifies (kept; --force re-exports)")
                    continue
                else:
                    print(f"{version} {precision}: {path} was exported from other model files under the same "
                          f"version name; exporting again")
        todo.append(precision)
    results = export_bundles(model_dir, root, todo, threads=conf.get("export.threads"),
                             explainer=explainer) if todo else {}
    for precision, result in results.items():
        p = result["parity"]
        print(f"{version} {precision}: {result['path']} ({result['bytes'] / 1e6:.0f} MB, {result['seconds']:.0f}s); "
              f"vs torch on {p.users} prompts: max |diff| {p.max_abs_diff:.2e}, "
              f"top-10 identical {p.top10_identical:.1%}, overlap {p.top10_overlap:.1%}")
    return {"version": version, "bundles": {p: str(registry.bundle_dir(version, p)) for p in precisions},
            "exported": results}
