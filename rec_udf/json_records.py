"""Frozen dataclasses as JSON objects, both ways, strictly: `parse` builds a record (nested records,
`Record | None` and `dict[str, Record]` fields included) and refuses a missing field or one the
record does not have with a BundleError naming the source and the field's dotted path; `to_dict`
writes fields in declaration order, leaving out optional ones (default None) that are None.
Used by the bundle manifest (rec_udf/manifest.py)."""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any

from rec_udf.errors import BundleError

record = dataclass(frozen=True, kw_only=True)     # a section: immutable, built by field name


def to_dict(section) -> dict[str, Any]:
    """A section as JSON-ready values, fields in declaration order; optional fields left at None are
    left out (a required field that is None, e.g. SpecialTokens.cls, is written as null)."""
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if value is None and f.default is None:
            continue
        out[f.name] = _plain(value)
    return out


def _plain(value):
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def parse(cls, data: Any, source: object, path: str = ""):
    """`data` (a JSON object) as dataclass `cls`, nested sections included."""
    if not isinstance(data, dict):
        raise BundleError(f"{source}: field '{path.rstrip('.')}' should be a JSON object, not {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        raise BundleError(f"{source}: unknown field '{path}{unknown[0]}' (one this runtime does not read; "
                          "written by another version?)")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING:
                raise BundleError(f"{source}: field '{path}{name}' is missing")
            continue
        values[name] = _value(hints[name], data[name], source, f"{path}{name}")
    return cls(**values)


def _value(hint, value, source: object, path: str):
    """A field's JSON value as its annotation asks: sections parsed, dicts of sections parsed per
    key, anything else as JSON has it."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None and type(None) in typing.get_args(hint):
        return None
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, source, path + ".")
    if len(args) == 1 and dataclasses.is_dataclass(args[0]):           # Section | None
        return parse(args[0], value, source, path + ".")
    container = args[0] if len(args) == 1 else hint
    inner = typing.get_args(container)
    if typing.get_origin(container) is dict and dataclasses.is_dataclass(inner[1]):    # e.g. files
        if not isinstance(value, dict):
            raise BundleError(f"{source}: field '{path}' should be a JSON object, not {type(value).__name__}")
        return {key: parse(inner[1], item, source, f"{path}[{json.dumps(key)}].") for key, item in value.items()}
    return value
