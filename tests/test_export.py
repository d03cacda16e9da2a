"""Export bundles: torch/ONNX parity, the torch-free runtime, and refusal of corrupt bundles.

One random-weight model version (tests/model_fixtures.py) is exported once per module in all three
precisions; the tests read those bundles or copies of them."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lakerec.model.glm import collate
from lakerec.model.store import load_catalogue, load_model
from lakerec.model.train_sasrec import left_pad
from model_export import parity
from model_export.export import export_bundles
from rec_udf import bundle as bundle_format
from rec_udf import manifest as manifest_format
from rec_udf.errors import BundleError
from rec_udf.glm_input import build_example, tokenize_prompt
from rec_udf.recommender import Recommender
from tests.model_fixtures import prepared_explainer, random_model_version

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model_dir = random_model_version(root / "versions", n_items=80)
    # the real explainer LLM (its fp32 build) goes into the fp32 and int8 bundles; fp16 (GPU) bundles
    # would carry the fp16 build, not prepared here, so this fp16 bundle has none
    results = export_bundles(model_dir, root / "bundles", precisions=("fp32", "int8", "fp16"), parity_users=48,
                             explainer=prepared_explainer(("fp32",)))
    return model_dir, {p: Path(r["path"]) for p, r in results.items()}


@pytest.fixture(scope="module")
def reference(exported):
    """The torch model (LoRA unmerged) and fresh prompts the export never saw (another seed)."""
    model_dir, _ = exported
    model, id_model, info, tokenizer, item_ids = load_model(model_dir)
    from rec_udf.glm_input import SpecialTokens
    special = SpecialTokens.resolve(tokenizer)
    prompts, sequences = parity.parity_users(load_catalogue(model_dir), info["template"], n=100, seed=123)
    return model.eval(), id_model.eval(), tokenizer, special, item_ids, prompts, sequences


def test_fp32_user_vectors_match_torch_and_top10_lists_are_identical(exported, reference):
    _, bundles = exported
    model, id_model, tokenizer, special, item_ids, prompts, sequences = reference
    expected = parity.torch_user_vectors(model, id_model, tokenizer, special, item_ids, prompts, sequences)
    scorer = Recommender.open(bundles["fp32"], prefer="cpu")
    got = scorer.user_vectors(prompts, sequences)
    assert np.abs(got - expected).max() < 1e-4
    top_onnx, _ = scorer.top_k(got, 10, sequences)
    top_torch, _ = scorer.top_k(expected, 10, sequences)
    identical = np.mean([list(a) == list(b) for a, b in zip(top_onnx, top_torch)])
    assert identical >= 0.99
    # the manifest records the export-time check on its own prompts
    recorded = json.loads((bundles["fp32"] / "manifest.json").read_text())["parity"]
    assert recorded["max_abs_diff"] < 1e-4 and recorded["top10_identical"] >= 0.99


def test_top_k_excludes_history_and_is_sorted(exported, reference):
    _, bundles = exported
    *_, prompts, sequences = reference
    scorer = Recommender.open(bundles["fp32"], prefer="cpu")
    vectors = scorer.user_vectors(prompts[:10], sequences[:10])
    top, scores = scorer.top_k(vectors, 15, sequences[:10])
    full = vectors @ scorer.bundle.item_matrix.T
    for row, history in enumerate(sequences[:10]):
        recommended = {int(scorer.bundle.item_ids[i]) for i in top[row]}
        assert not recommended & set(history)
        assert np.all(np.diff(scores[row]) <= 0)
        allowed = [i for i in range(full.shape[1]) if int(scorer.bundle.item_ids[i]) not in set(history)]
        best = sorted(allowed, key=lambda i: -full[row, i])[:15]
        assert np.allclose(sorted(full[row, best]), sorted(scores[row]))


def test_id_sequences_keep_the_newest_known_items_left_padded(exported):
    _, bundles = exported
    scorer = Recommender.open(bundles["fp32"], prefer="cpu")
    ids, width = [int(i) for i in scorer.bundle.item_ids], scorer.bundle.id_max_len
    unknown = max(ids) + 1
    assert scorer.catalogue_index([ids[5], unknown, ids[0]]).tolist() == [5, -1, 0]
    got = scorer.id_sequences([[ids[3], unknown, ids[7]], [], ids[:width + 5], [unknown], None])
    assert got.shape == (5, width)
    assert got[0].tolist() == [0] * (width - 2) + [4, 8]          # catalogue index + 1, newest last
    assert not got[1].any() and not got[3].any() and not got[4].any()
    assert got[2].tolist() == list(range(6, width + 6))           # only the newest `width` are kept


def test_generation_with_cache_equals_without_and_equals_torch(exported, reference):
    _, bundles = exported
    model, id_model, tokenizer, special, item_ids, prompts, sequences = reference
    scorer = Recommender.open(bundles["fp32"], prefer="cpu")
    prompts, sequences, items = prompts[:4], sequences[:4], [3, 17, 40, 79]
    cached = scorer.explain(prompts, sequences, items, max_new_tokens=8)
    uncached = scorer.explain(prompts, sequences, items, max_new_tokens=8, use_cache=False)
    assert cached == uncached
    # torch: the training code's generate() on the same explanation prompts
    index = {int(i): k for k, i in enumerate(item_ids)}
    suffixes = scorer.explanation_prompts(items)
    examples = [build_example(tokenize_prompt(tokenizer, special, p, index, True), special,
                              suffix_ids=tokenizer.encode(s, add_special_tokens=False).ids)
                for p, s in zip(prompts, suffixes)]
    seqs = np.stack([left_pad(np.array([index[i] for i in s]), id_model.config.max_len) for s in sequences])
    with torch.no_grad():
        tokens, _ = model.generate(collate(examples, special.pad), id_model.user_embedding(torch.from_numpy(seqs)), 8)
    assert cached == [tokenizer.decode(t) for t in tokens]


def test_a_bundle_serving_the_id_side_alone_ranks_as_the_whole_item_matrix_would(exported, reference):
    """Its top-k reads the item matrix's ID columns only; the LM columns it skips are zero in its user vectors."""
    from rec_udf.retrieval import top_k
    _, bundles = exported
    *_, sequences = reference
    recommender = Recommender.open(bundles["fp32"], prefer="cpu")
    recommender.lm_weight = 0.0                        # as a bundle exported with the LM term at weight 0
    vectors, _ = recommender.encode([None] * 16, sequences[:16])
    assert recommender.id_columns == 96 and not vectors[:, 96:].any()
    top, scores = recommender.top_k(vectors, 10, exclude=sequences[:16])
    full_top, full_scores = top_k(vectors, recommender.bundle.item_matrix, recommender.items, 10, sequences[:16])
    assert np.array_equal(top, full_top) and np.allclose(scores, full_scores, atol=1e-5)


def test_precision_variants_are_what_they_claim(exported, reference):
    _, bundles = exported
    *_, prompts, sequences = reference
    for graph in ("user_encoder.onnx", "sequence_encoder.onnx"):
        int8 = onnx.load(str(bundles["int8"] / graph))
        assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in int8.graph.node), graph
    assert not any(t.data_type == onnx.TensorProto.FLOAT16
                   for t in onnx.load(str(bundles["fp16"] / "sequence_encoder.onnx")).graph.initializer)
    fp16 = onnx.load(str(bundles["fp16"] / "user_encoder.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    for name in ("int8", "fp16"):
        manifest = json.loads((bundles[name] / "manifest.json").read_text())
        assert manifest["precision"] == name
        assert (bundles[name] / "user_encoder.onnx").stat().st_size < (bundles["fp32"] / "user_encoder.onnx").stat().st_size
        vectors = Recommender.open(bundles[name], prefer="cpu").user_vectors(prompts[:8], sequences[:8])
        # [SASRec states / 2 (2 members x 32) ; 0.5 * text-view state (32) ; (lm_weight / temperature) *
        # unit LM vector (32)]
        assert vectors.shape == (8, 128)
        assert np.allclose(np.linalg.norm(vectors[:, 96:], axis=1), 0.7 / 0.07, rtol=1e-3)
        # reduced precision moves the vectors (whose LM half has norm 10) a little, not wholesale
        assert 0 < manifest["parity"]["max_abs_diff"] < 0.25 * 0.7 / 0.07


TORCH_FREE = r"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'peft', 'lakerec', 'model_export'):
            raise ImportError(f'{name} is blocked in this process')
sys.meta_path.insert(0, Block())
from rec_udf.prompt_inputs import as_prompt
from rec_udf.recommender import Recommender
from rec_udf.textualizer import textualize
scorer = Recommender.open(sys.argv[1], prefer='auto', threads=1)
items = scorer.bundle.catalogue
history = [{**items[i], 'rating': 4.0, 'event_time': None} for i in (1, 5, 9)]
prompt = textualize({'user_id': 1}, history, max_tokens=120, max_items=50)
row = as_prompt(prompt.text, [{'item_id': e.item_id, 'start': e.start, 'end': e.end} for e in prompt.entities])
seq = [h['item_id'] for h in history]
top, scores = scorer.top_k(scorer.user_vectors([row], [seq]), 5, [seq])
explainer = Recommender.open(sys.argv[1], prefer='auto', threads=1, explainer=True)
said = explainer.explanations([explainer.evidence(int(top[0][0]), seq, [4.0, 5.0, 3.0])])[0]
print(json.dumps({'top': [int(scorer.bundle.item_ids[i]) for i in top[0]], 'provider': scorer.provider,
                  'explanation': [said.source, said.text], 'torch_loaded': 'torch' in sys.modules}))
"""


def test_a_process_without_torch_loads_verifies_and_scores(exported):
    _, bundles = exported
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", TORCH_FREE, str(bundles["fp32"])], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch_loaded"] is False and result["provider"] == "CPUExecutionProvider"
    assert result["explanation"][0] in ("llm", "fallback") and len(result["explanation"][1].split()) >= 4
    # same answer as this (torch-importing) process
    scorer = Recommender.open(bundles["fp32"], prefer="cpu")
    items = scorer.bundle.catalogue
    from rec_udf.textualizer import textualize
    history = [{**items[i], "rating": 4.0, "event_time": None} for i in (1, 5, 9)]
    prompt = textualize({"user_id": 1}, history, max_tokens=120, max_items=50)
    seq = [h["item_id"] for h in history]
    top, _ = scorer.top_k(scorer.user_vectors([prompt], [seq]), 5, [seq])
    assert result["top"] == [int(scorer.bundle.item_ids[i]) for i in top[0]]


def test_the_bundled_explainer_writes_checked_sentences_deterministically_in_batches(exported):
    _, bundles = exported
    manifest = json.loads((bundles["fp32"] / "manifest.json").read_text())
    assert manifest["explainer"]["precision"] == "fp32" and manifest["explainer"]["execution"] == "cpu"
    assert json.loads((bundles["int8"] / "manifest.json").read_text())["explainer"]["precision"] == "fp32"
    assert any(name.startswith("explainer/") and name.endswith(".onnx") for name in manifest["files"])
    assert "explainer" not in json.loads((bundles["fp16"] / "manifest.json").read_text())
    scorer = Recommender.open(bundles["fp32"], prefer="cpu", explainer=True)
    rng = np.random.default_rng(0)
    n = len(scorer.bundle.item_ids)
    evidence = [scorer.evidence(int(rng.integers(n)), scorer.bundle.item_ids[rng.choice(n, 6, replace=False)],
                                [float(r) for r in rng.integers(3, 6, size=6)]) for _ in range(6)]
    from rec_udf import explanations as ex
    said = scorer.explanations(evidence)
    for e, s in zip(evidence, said):
        assert s.evidence_item_ids == e.item_ids and len(e.item_ids) == 3
        if s.source == "llm":
            assert ex.check(s.text, e, scorer.title_index) is None and s.rejected is None
        else:
            assert s.source == "fallback" and s.text == ex.fallback_sentence(e) and s.rejected
    assert [s.text for s in scorer.explanations(evidence)] == [s.text for s in said]      # greedy: repeatable
    scorer.explainer.batch_size = 1                                                       # padding changes nothing
    assert [s.text for s in scorer.explanations(evidence[:3])] == [s.text for s in said[:3]]
    assert [s.source for s in scorer.explanations(evidence, llm=False)] == ["fallback"] * 6


def test_a_bundle_without_its_explainer_or_with_a_corrupt_one_is_refused(exported, tmp_path):
    _, bundles = exported
    with pytest.raises(BundleError, match="this bundle has no explainer"):
        Recommender.open(bundles["fp16"], prefer="cpu", explainer=True)
    target = tmp_path / "bundle"
    shutil.copytree(bundles["int8"], target)
    path = next((target / "explainer").glob("*.onnx.data"))
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(BundleError, match=r"explainer/model\.onnx\.data: sha256 differs"):
        Recommender.open(target, prefer="cpu", explainer=True)
    path.unlink()
    with pytest.raises(BundleError, match=r"explainer/model\.onnx\.data: listed in manifest\.json but missing"):
        bundle_format.verify(target)


# --- corrupt bundles -------------------------------------------------------------------------------

@pytest.fixture
def bundle_copy(exported, tmp_path):
    _, bundles = exported
    target = tmp_path / "bundle"
    shutil.copytree(bundles["int8"], target)
    bundle_format.verify(target)               # the untouched copy is fine
    return target


def _edit_manifest(directory, change):
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_truncated_file_is_refused_by_name(bundle_copy):
    path = bundle_copy / "generator.onnx"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(BundleError, match=r"generator\.onnx: \d+ bytes, manifest\.json says \d+ \(truncated"):
        Recommender.open(bundle_copy, prefer="cpu")


def test_one_flipped_byte_is_refused_by_name(bundle_copy):
    path = bundle_copy / "item_matrix.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"item_matrix\.npy: sha256 differs"):
        bundle_format.load(bundle_copy)


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_graph_or_explainer_file_is_hashed_before_its_first_use_not_at_load(bundle_copy):
    """Executors defer the sha256 of the LM graphs and the explainer to their first use: a worker that
    never runs them does not read them, and one that does is refused before it runs an altered byte."""
    _flip_a_byte(bundle_copy / "generator.onnx")
    explainer_model = next(p for p in (bundle_copy / "explainer").rglob("*") if p.suffix == ".data" or p.name == "model.onnx")
    _flip_a_byte(explainer_model)
    with pytest.raises(BundleError, match=r"sha256 differs"):
        bundle_format.verify(bundle_copy)                      # the driver's full check still sees them
    recommender = Recommender.open(bundle_copy, prefer="cpu")  # loads: nothing altered has been used
    recommender.id_model([[recommender.bundle.item_ids[0]]])
    with pytest.raises(BundleError, match=r"generator\.onnx: sha256 differs"):
        recommender.sessions["generator"]
    with pytest.raises(BundleError, match=rf"{explainer_model.name}: sha256 differs"):
        recommender.bundle.explainer_dir()
    recommender.sessions["user_encoder"]                       # an unaltered graph still opens


def test_manifest_naming_a_missing_file_is_refused(bundle_copy):
    (bundle_copy / "items.parquet").unlink()
    with pytest.raises(BundleError, match=r"items\.parquet: listed in manifest\.json but missing"):
        bundle_format.verify(bundle_copy)
    _edit_manifest(bundle_copy, lambda m: m["graphs"]["user_encoder"].update(file="encoder_v2.onnx"))
    with pytest.raises(BundleError, match=r"'encoder_v2\.onnx' is used by the bundle but not listed"):
        bundle_format.verify(bundle_copy)


def test_mismatched_template_version_is_refused(bundle_copy):
    _edit_manifest(bundle_copy, lambda m: m["template"].update(version="0.9.0"))
    with pytest.raises(BundleError, match=r"field template\.version is '0\.9\.0' but this textualizer renders"):
        bundle_format.load(bundle_copy)


def test_unreadable_manifest_and_foreign_format_are_refused(bundle_copy):
    _edit_manifest(bundle_copy, lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match=f"this runtime reads 'lakerec-bundle' version {manifest_format.FORMAT_VERSION}"):
        bundle_format.verify(bundle_copy)
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON"):
        bundle_format.verify(bundle_copy)
    with pytest.raises(BundleError, match="bundle directory not found"):
        bundle_format.verify(bundle_copy / "nope")


def test_export_command_writes_keeps_and_repairs_bundles(exported, tmp_path, capsys):
    from jobs.cli import main
    model_dir, _ = exported
    registry = model_dir.parent.parent
    sets = ["--set", f"models.registry_dir={registry}", "--set", f"models.bundles_dir={tmp_path}"]
    assert main(["export", "--model", "v0001", "--precision", "fp32", *sets]) == 0
    bundle = tmp_path / "v0001" / "fp32"
    assert "top-10 identical 100.0%" in capsys.readouterr().out
    bundle_format.verify(bundle)
    assert main(["export", "--model", "v0001", "--precision", "fp32", *sets]) == 0
    assert "exists and verifies (kept" in capsys.readouterr().out
    with open(bundle / "items.parquet", "r+b") as f:
        f.truncate(10)
    assert main(["export", "--model", "v0001", "--precision", "fp32", *sets]) == 0
    assert "existing bundle is unusable" in capsys.readouterr().out
    bundle_format.verify(bundle)
    assert not [p for p in tmp_path.joinpath("v0001").iterdir() if p.name.startswith(".")]   # no leftovers
    assert main(["export", "--model", "v0042", *sets]) == 2
    assert "model version 'v0042' not found" in capsys.readouterr().err
    assert main(["export", "--model", "v0001", "--precision", "fp8", *sets]) == 2
    assert "unknown precision ['fp8']" in capsys.readouterr().err


def test_device_choice_and_the_provider_actually_started(exported, monkeypatch):
    from rec_udf import runtime
    _, bundles = exported
    monkeypatch.setattr(runtime, "gpu_visible", lambda: False)
    assert runtime.choose_device("auto", threads=3) == runtime.Device("cpu", None, 3)
    monkeypatch.setattr(runtime, "task_resources", lambda: (["1"], 4))      # a Spark task holding GPU 1
    if runtime.CUDA in runtime.ort.get_available_providers():
        assert runtime.choose_device("auto") == runtime.Device("cuda", 1, 4)
    assert runtime.choose_device("cpu") == runtime.Device("cpu", None, 4)
    options = runtime.session_options(runtime.Device("cpu", None, 4))
    assert options.intra_op_num_threads == 4
    assert options.graph_optimization_level == runtime.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    monkeypatch.undo()
    if runtime.gpu_visible():
        pytest.skip("a GPU is visible: the CPU-fallback refusal is exercised on CPU-only machines")
    with pytest.raises(BundleError, match="asked for the CUDA execution provider"):
        Recommender.open(bundles["int8"], prefer="cuda", allow_cpu_fallback=False)
    assert Recommender.open(bundles["int8"], prefer="cuda").provider == runtime.CPU


def test_a_bundle_from_other_model_files_under_the_same_version_is_not_kept(exported, tmp_path, capsys):
    from jobs.cli import main
    model_dir, bundles = exported
    sets = ["--set", f"models.registry_dir={model_dir.parent.parent}", "--set", f"models.bundles_dir={tmp_path}"]
    shutil.copytree(bundles["int8"], tmp_path / "v0001" / "int8")
    _edit_manifest(tmp_path / "v0001" / "int8", lambda m: m.update(model_fingerprint="another model"))
    assert main(["export", "--model", "v0001", "--precision", "int8", *sets]) == 0
    assert "exported from other model files" in capsys.readouterr().out


def _two_term_scores(model, id_model, tokenizer, special, item_ids, catalogue, prompts, sequences, weight):
    """The ID model's full-sort scores (the mean of its SASRec members') + text_weight * the text view's
    + weight * the LM's scores, each computed by its own training code path."""
    from lakerec.model.examples import item_examples
    index = {int(item): i for i, item in enumerate(item_ids)}
    with torch.no_grad():
        text_items = model.item_matrix(item_examples(tokenizer, special, catalogue, unified=False), special.pad)
        batch = collate([build_example(tokenize_prompt(tokenizer, special, p, index, True), special)
                         for p in prompts], special.pad)
        seqs = torch.from_numpy(np.stack([left_pad(np.array([index[i] for i in s], dtype=np.int64),
                                                   id_model.config.max_len) for s in sequences]))
        states = id_model.user_embedding(seqs)
        lm_user = model.user_vectors(model.hidden(batch, states), batch)
        members = [id_model.sasrec, *id_model.partners]        # the ID model: the seed ensemble's mean
        assert len(members) == 2
        id_scores = (sum(m.full_sort_scores(seqs) for m in members) / len(members)
                     + 0.5 * id_model.text_view.full_sort_scores(seqs))
        return (id_scores + weight * model.lm_scores(lm_user, text_items)).numpy()


def test_exported_score_is_one_dot_product_equal_to_sasrec_plus_weighted_lm_term(exported, reference):
    """[SASRec states / K ; a text-view state ; (w / temperature) LM vector] . [SASRec items ; text-view
    item ; item text vector] equals the three terms computed separately by the torch training code."""
    model_dir, bundles = exported
    model, id_model, tokenizer, special, item_ids, prompts, sequences = reference
    assert model.lm_weight == 0.7 and id_model.text_weight == 0.5
    scorer = Recommender.open(bundles["fp32"], prefer="cpu")
    got = scorer.user_vectors(prompts[:24], sequences[:24]) @ scorer.bundle.item_matrix.T
    want = _two_term_scores(model, id_model, tokenizer, special, item_ids, load_catalogue(model_dir), prompts[:24],
                            sequences[:24], 0.7)
    assert np.abs(got - want).max() < 1e-3 * max(1.0, np.abs(want).max())
    assert scorer.bundle.manifest.hybrid.serving == "hybrid"


def test_a_bundle_serving_the_id_model_scores_exactly_as_sasrec_without_the_lm_pass(exported, reference):
    model_dir, bundles = exported
    model, id_model, tokenizer, special, item_ids, prompts, sequences = reference
    scorer = Recommender.open(bundles["fp32"], prefer="cpu")
    scorer.lm_weight = 0.0                       # what a bundle exported with lm_weight 0 holds
    scorer.sessions["user_encoder"] = None       # the LM graph must not run
    got = scorer.user_vectors(prompts[:24], sequences[:24]) @ scorer.bundle.item_matrix.T
    want = _two_term_scores(model, id_model, tokenizer, special, item_ids, load_catalogue(model_dir), prompts[:24],
                            sequences[:24], 0.0)
    assert np.abs(got - want).max() < 1e-4
