"""The bundle's `manifest.json` as one typed record: `model_export` builds a `Manifest` and writes it
with `to_json`; every reader (the runtime, the scoring driver, `lakerec export`, the benchmarks)
gets one from `Manifest.from_json` and reads attributes, never string keys. docs/bundle.md
describes each field.

Parsing is strict: a missing field, or one this runtime does not know, is a BundleError naming the
manifest file and the field's dotted path. Sections that only record where the model came from
(`backbone`, `training`, a graph's inputs and outputs) stay plain JSON objects. A field that may be
absent (older bundles, or the first write during export) defaults to None and is not written then.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from rec_udf.errors import BundleError
from rec_udf.glm_input import SpecialTokens
from rec_udf.json_records import parse, record, to_dict

FORMAT = "lakerec-bundle"
FORMAT_VERSION = 2          # 2: the hybrid score (ID-side state ; weighted LM vector), see model_export/graphs.py
MANIFEST = "manifest.json"


@record
class Lora:
    r: int
    alpha: int
    dropout: float
    targets: list[str]
    merged: bool


@record
class Template:
    """The textualizer template the model was trained on (the runtime refuses another version)."""
    name: str
    version: str
    hash: str
    spec: dict[str, Any]                 # textualizer options (item_noun_plural, history_verb)
    max_prompt_tokens: int
    max_history_items: int


@record
class Hybrid:
    lm_weight: float
    temperature: float
    id_dim: int
    sasrec_dim: int | None = None        # absent in bundles exported before the text view: id_dim
    lm_dim: int
    text_weight: float | None = None
    serving: str | None = None           # hybrid | id_model+text_view | id_model


@record
class TaskTemplate:
    name: str
    text: str


@record
class Tasks:
    scoring: TaskTemplate
    explanation: TaskTemplate


@record
class TokenizerEntry:
    file: str
    special_tokens: SpecialTokens


@record
class Graph:
    file: str
    inputs: list[dict[str, Any]]         # name, dtype, shape (named axes are dynamic)
    outputs: list[dict[str, Any]]
    layers: int | None = None            # the generator's key/value cache layout
    heads: int | None = None
    head_dim: int | None = None


@record
class Graphs:
    sequence_encoder: Graph
    user_encoder: Graph
    generator: Graph

    def by_name(self) -> dict[str, Graph]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@record
class Limits:
    max_positions: int                   # longest part A the backbone has position embeddings for
    max_inter: int
    max_intra: int
    id_max_len: int                      # the ID model's sequence length


@record
class Items:
    count: int
    dim: int
    ids: str                             # file names, relative to the bundle
    matrix: str
    catalogue: str
    matrix_note: str

    def files(self) -> list[str]:
        return [self.ids, self.matrix, self.catalogue]


@record
class ExplainerEntry:
    directory: str = "explainer"
    precision: str                       # fp32 | int4 | fp16
    execution: str | None = None         # cpu | cuda
    model: str
    source: str
    self_trained: bool
    prompt_version: str | None = None
    check_version: str | None = None     # the faithfulness check a self-trained explainer was chosen under
    runtime: str
    self_training: dict[str, Any] | None = None

    def describes(self, info: dict[str, Any]) -> bool:
        """Whether this entry records the explainer `info` describes (a prepared explainer's entry,
        less directory and precision; its self-training report aside, and the prompt version between two
        base explainers: a base explainer serves under any, see `rec_udf.explainer.refusal`)."""
        mine = self.to_dict()
        base = not info.get("self_trained") and not mine.get("self_trained")
        return all(mine.get(key) == value for key, value in info.items()
                   if key != "self_training" and not (base and key == "prompt_version"))

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


@record
class Parity:
    """Torch (LoRA unmerged) vs the bundle on fixed prompts (model_export/parity.py)."""
    reference: str
    users: int
    max_abs_diff: float
    top10_identical: float
    top10_overlap: float


@record
class FileEntry:
    sha256: str
    bytes: int


@record
class Manifest:
    format: str
    format_version: int
    model_version: str
    precision: str
    created_at: str
    backbone: dict[str, Any]
    lora: Lora
    template: Template
    prompt_form: str                     # unified: item ids in ID slots
    hybrid: Hybrid
    tasks: Tasks
    tokenizer: TokenizerEntry
    opset: int
    exporter: str
    onnxruntime_built_with: str
    graphs: Graphs
    limits: Limits
    items: Items
    training: dict[str, Any]             # the version's metrics, lineage and profile
    explainer: ExplainerEntry | None = None   # None: exported without one (export.explainer false)
    model_fingerprint: str | None = None
    files: dict[str, FileEntry] | None = None    # every other file; filled in when written
    parity: Parity | None = None                 # measured after the first write

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: Any, source: object = MANIFEST) -> "Manifest":
        """The manifest of a parsed JSON object; BundleError naming `source` and the field otherwise."""
        if not isinstance(data, dict):
            raise BundleError(f"{source}: not a JSON object")
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{source}: format {data.get('format')!r} version {data.get('format_version')!r}; "
                              f"this runtime reads {FORMAT!r} version {FORMAT_VERSION}")
        return parse(cls, data, source)

    @classmethod
    def from_json(cls, text: str, source: object = MANIFEST) -> "Manifest":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source)
