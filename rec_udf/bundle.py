"""The export bundle: a directory with `manifest.json`, three ONNX graphs, the item matrix, the item
catalogue, the tokenizer and (optional) the explainer LLM in `explainer/`. Written by `model_export`, read here (torch-free) on executors.

Loading verifies before anything runs: the manifest has this runtime's format version and parses
(`rec_udf.manifest`: every field present and known); every file it lists exists with the recorded
size and sha256 (so a truncated, altered or missing file is refused by name); the prompt template
version equals the textualizer's, since prompts rendered by another template are not what the model
was trained on. `load` (on executors) hashes at once what every load reads and leaves the files a worker
may never run (the LM graphs, the explainer: ~750 MB) to `Bundle.verify_files` right before their
first use, so a worker scoring with the ID side alone does not read them at all.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rec_udf import textualizer
from rec_udf.catalogue import read_catalogue
from rec_udf.errors import BundleError
from rec_udf.glm_input import SpecialTokens, load_tokenizer
from rec_udf.manifest import MANIFEST, FileEntry, Manifest

TOKENIZER = "tokenizer.json"
EXPLAINER_FILES = ("genai_config.json", "model.onnx", "tokenizer.json")   # at least these, in explainer.directory


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entries(directory: Path) -> dict[str, FileEntry]:
    """sha256 and size of every file under `directory` except the manifest (relative paths)."""
    return {str(p.relative_to(directory)): FileEntry(sha256=sha256(p), bytes=p.stat().st_size)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST}


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise BundleError(f"{directory}: bundle directory not found")
    if not path.exists():
        raise BundleError(f"{path}: missing; not a LakeRec bundle (export one with `lakerec export`)")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    return Manifest.from_json(text, path)


def check_sha256(directory: Path, name: str, entry: FileEntry) -> None:
    path = directory / name
    if sha256(path) != entry.sha256:
        raise BundleError(f"{path}: sha256 differs from {MANIFEST} (the file was altered or corrupted)")


def hashed_on_first_use(manifest: Manifest) -> set[str]:
    """Listed files a worker may never read: the graphs other than the sequence encoder (a bundle serving
    the ID side alone never runs them) and the explainer's files (explanations may be off)."""
    names = {g.file for name, g in manifest.graphs.by_name().items() if name != "sequence_encoder"}
    if manifest.explainer is not None:
        names |= {name for name in manifest.files if name.startswith(f"{manifest.explainer.directory}/")}
    return names


def verify(directory: Path, defer_hashing: bool = False) -> Manifest:
    """The manifest, after every check in the module docstring; BundleError names what is wrong.
    defer_hashing: leave the sha256 of `hashed_on_first_use` files to `Bundle.verify_files` (their
    presence and size are still checked here)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    where = directory / MANIFEST
    files = manifest.files
    if not files:
        raise BundleError(f"{where}: field 'files' is missing or empty")
    used = ([g.file for g in manifest.graphs.by_name().values()] + manifest.items.files()
            + [manifest.tokenizer.file])
    if manifest.explainer is not None:
        used += [f"{manifest.explainer.directory}/{name}" for name in EXPLAINER_FILES]
    for name in used:
        if name not in files:
            raise BundleError(f"{where}: '{name}' is used by the bundle but not listed in 'files'")
    deferred = hashed_on_first_use(manifest) if defer_hashing else set()
    for name, entry in files.items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{path}: listed in {MANIFEST} but missing")
        size = path.stat().st_size
        if size != entry.bytes:
            raise BundleError(f"{path}: {size} bytes, {MANIFEST} says {entry.bytes} (truncated or replaced)")
        if name not in deferred:
            check_sha256(directory, name, entry)
    version = manifest.template.version
    if version != textualizer.TEMPLATE_VERSION:
        raise BundleError(f"{where}: field template.version is {version!r} but this textualizer renders "
                          f"{textualizer.TEMPLATE_VERSION!r} (rec_udf/textualizer.py TEMPLATE_VERSION); "
                          "export a model trained on the current template")
    return manifest


@dataclass
class Bundle:
    directory: Path
    manifest: Manifest
    tokenizer: object
    special: SpecialTokens
    item_ids: np.ndarray          # (n_items,) catalogue order
    item_matrix: np.ndarray       # (n_items, id_dim + lm_dim) float32: [ID-side item embedding ; item text vector]
    catalogue: list[dict]         # item fields, catalogue order
    unhashed: set[str] = field(default_factory=set)   # listed files whose sha256 is checked on first use

    def verify_files(self, names) -> None:
        """Check the sha256 of those of `names` not yet hashed (BundleError names a file that differs)."""
        for name in sorted(set(names) & self.unhashed):
            check_sha256(self.directory, name, self.manifest.files[name])
            self.unhashed.discard(name)

    @functools.cached_property
    def sha256(self) -> str:
        """Identity of the bundle: the manifest's own hash (it covers every file's hash)."""
        return sha256(self.directory / MANIFEST)

    def explainer_dir(self) -> Path:
        """The explainer's onnxruntime-genai directory, its files verified; BundleError when the bundle
        has none."""
        explainer = self.manifest.explainer
        if explainer is None:
            raise BundleError(f"{self.directory / MANIFEST}: this bundle has no explainer; re-export it with "
                              "`lakerec export` or set score.explainer to template or off")
        self.verify_files(name for name in self.manifest.files if name.startswith(f"{explainer.directory}/"))
        return self.directory / explainer.directory

    def graph_path(self, name: str) -> Path:
        """One ONNX graph (sequence_encoder, user_encoder, generator), its file verified."""
        file = self.manifest.graphs.by_name()[name].file
        self.verify_files([file])
        return self.directory / file

    @property
    def id_max_len(self) -> int:
        return self.manifest.limits.id_max_len


def load(directory: str | Path) -> Bundle:
    """Verify (the LM graphs' and the explainer's sha256 on first use), then load everything but the
    ONNX sessions (see rec_udf.runtime)."""
    directory = Path(directory)
    manifest = verify(directory, defer_hashing=True)
    items = manifest.items
    tokenizer = load_tokenizer(directory)          # tokenizer.json, listed and verified above
    special: SpecialTokens = manifest.tokenizer.special_tokens
    item_ids = np.load(directory / items.ids)
    matrix = np.load(directory / items.matrix)
    catalogue = read_catalogue(directory / items.catalogue)
    if not (len(item_ids) == len(matrix) == len(catalogue) == items.count):
        raise BundleError(f"{directory / MANIFEST}: items.count {items.count} but item_ids has {len(item_ids)}, "
                          f"the item matrix {len(matrix)} and the catalogue {len(catalogue)} rows")
    return Bundle(directory, manifest, tokenizer, special, item_ids, matrix.astype(np.float32, copy=False), catalogue,
                  hashed_on_first_use(manifest))

