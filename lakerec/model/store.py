"""Build, save and load a trained recommendation LM (see registry.py for the directory layout)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from lakerec.model.backbone import load_backbone
from lakerec.model.hybrid import IDSide, id_side
from lakerec.model.recllm import RecLLM, RecLLMConfig, attach_lora
from lakerec.model.sasrec import SASRec, SASRecConfig
from rec_udf.catalogue import read_catalogue, write_catalogue
from rec_udf.glm_input import SpecialTokens, load_tokenizer

CATALOGUE_FILE = "catalogue.parquet"
TEXT_VIEW_FILE = "text_view.safetensors"
PARTNERS_FILE = "id_partners.safetensors"    # the ID model's other seed members, "<k>.<tensor>"


def build_model(config: RecLLMConfig, n_items: int, id_model: SASRec | None):
    """Backbone (frozen) + LoRA + fresh RecLLM heads; the ID model's item embeddings attached."""
    backbone, tokenizer_dir = load_backbone(config.backbone)
    tokenizer = load_tokenizer(tokenizer_dir)
    special = SpecialTokens.resolve(tokenizer)
    vocab = tokenizer.get_vocab_size()
    if hasattr(backbone, "model") and backbone.model.get_input_embeddings().num_embeddings < vocab:
        backbone.model.resize_token_embeddings(vocab)
    model = RecLLM(attach_lora(backbone, config), config, special, n_items)
    if id_model is not None:
        attach_id_model(model, id_model)
    return model, tokenizer, special, tokenizer_dir


def attach_id_model(model: RecLLM, id_model: SASRec) -> None:
    model.id_items.copy_(id_model.item_embeddings().to(model.id_items.device))


def _weights(module) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_model(directory: Path, model: RecLLM, id_model: "SASRec | IDSide", item_ids: np.ndarray,
               items: list[dict], info: dict) -> None:
    """`items`: catalogue fields in item_ids order (what the item matrix is computed from at export).
    The text view of an IDSide, when it has one, goes to text_view.safetensors, its config and weight
    to info["text_view"]; the ID model's partners (a seed ensemble) to id_partners.safetensors, their
    count to info["id_partners"]."""
    directory = Path(directory)
    side = id_side(id_model)
    model.backbone.save_pretrained(str(directory / "adapter"))
    save_file(model.trainable_state(), str(directory / "trainable.safetensors"))
    save_file(_weights(side.sasrec), str(directory / "id_model.safetensors"))
    if side.text_view is not None:
        save_file(_weights(side.text_view), str(directory / TEXT_VIEW_FILE))
        info = {**info, "text_view": {"config": asdict(side.text_view.config), "weight": side.text_weight}}
    if len(side.partners):
        save_file({f"{k}.{name}": tensor for k, partner in enumerate(side.partners)
                   for name, tensor in _weights(partner).items()}, str(directory / PARTNERS_FILE))
        info = {**info, "id_partners": len(side.partners)}
    np.save(directory / "item_ids.npy", np.asarray(item_ids, dtype=np.int64))
    write_catalogue(directory / CATALOGUE_FILE, items)
    (directory / "model.json").write_text(json.dumps(info, indent=2, default=str))


def load_model(directory: Path, device: str = "cpu"):
    """-> (RecLLM, IDSide, info, tokenizer, item_ids)"""
    directory = Path(directory)
    info = json.loads((directory / "model.json").read_text())
    item_ids = np.load(directory / "item_ids.npy")
    sasrec = SASRec(SASRecConfig(**info["id_model_config"]))
    sasrec.load_state_dict(load_file(str(directory / "id_model.safetensors")))
    text_view = None
    if info.get("text_view"):
        text_view = SASRec(SASRecConfig(**info["text_view"]["config"]))
        text_view.load_state_dict(load_file(str(directory / TEXT_VIEW_FILE)))
    partners = [SASRec(sasrec.config) for _ in range(int(info.get("id_partners", 0)))]
    if partners:
        weights = load_file(str(directory / PARTNERS_FILE))
        for k, partner in enumerate(partners):
            partner.load_state_dict({name.split(".", 1)[1]: t for name, t in weights.items()
                                     if name.split(".", 1)[0] == str(k)})
    id_model = IDSide(sasrec, text_view, info["text_view"]["weight"] if text_view is not None else 0.0,
                      partners).eval()
    model, tokenizer, _, _ = build_model(RecLLMConfig(**info["llm_config"]), len(item_ids), id_model)
    missing = set(model.trainable_state()) - set(load_file(str(directory / "trainable.safetensors")))
    if missing:
        raise ValueError(f"{directory / 'trainable.safetensors'}: missing tensors {sorted(missing)[:5]}")
    model.load_state_dict(load_file(str(directory / "trainable.safetensors")), strict=False)
    model.lm_weight = float(info.get("hybrid", {}).get("lm_weight", 0.0))
    return model.to(device), id_model.to(device), info, tokenizer, item_ids


def load_catalogue(directory: Path) -> list[dict]:
    path = Path(directory) / CATALOGUE_FILE
    if not path.exists():
        from lakerec.errors import ConfigError
        raise ConfigError(f"{path} is missing: this version was registered before models carried their item "
                          "catalogue; train a new version (lakerec train) to export it")
    return read_catalogue(path)


MODEL_FILES = ("model.json", "trainable.safetensors", "id_model.safetensors", TEXT_VIEW_FILE, PARTNERS_FILE,
               "item_ids.npy", CATALOGUE_FILE)
OPTIONAL_FILES = (TEXT_VIEW_FILE, PARTNERS_FILE)


def model_fingerprint(directory: Path) -> str:
    """sha256 over the files that define a version: a bundle made from other files is another model,
    even under the same version name (e.g. a second registry sharing one bundles_dir)."""
    import hashlib
    from rec_udf.bundle import sha256
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = Path(directory) / name
        if name in OPTIONAL_FILES and not path.exists():
            continue                 # optional: a version without them keeps its fingerprint
        digest.update(f"{name}:{sha256(path) if path.exists() else '-'};".encode())
    return digest.hexdigest()


def model_info(llm_config: RecLLMConfig, id_config: SASRecConfig, **extra) -> dict:
    return {"llm_config": llm_config.to_dict(), "id_model_config": asdict(id_config), **extra}
