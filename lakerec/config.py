"""Configuration: a YAML file (default conf/local.yaml) plus `key.path=value` overrides."""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from conf import LOCAL_DEFAULT
from lakerec.errors import ConfigError
from lakerec.settings import validate

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any) -> Any:
    """Expand ${VAR} / ${VAR:-default} and a leading ~ in every string of a nested structure."""
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, str):
        expanded = _ENV_REF.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
        return os.path.expanduser(expanded) if expanded.startswith("~") else expanded
    return value


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    # Spark keys contain dots themselves: below `spark.config` the rest is one key.
    if parts[:2] == ["spark", "config"] and len(parts) > 2:
        parts = parts[:2] + [".".join(parts[2:])]
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


class Conf:
    """Read-only view of the merged configuration, validated against `lakerec.settings` once: the
    typed `settings`, and `get("a.b")` by dotted path. There is no fallback argument: every default
    is in conf/local.yaml, and a path the schema does not know is a bug (KeyError)."""

    def __init__(self, tree: dict, source: str):
        self.settings = validate(tree, source)
        self._tree = self.settings.model_dump()          # values as the schema typed them
        self.source = source

    def get(self, dotted: str) -> Any:
        node: Any = self._tree
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"configuration key {dotted!r} is not in the schema (lakerec/settings.py)")
            node = node[part]
        return copy.deepcopy(node)

    def require(self, dotted: str) -> Any:
        value = self.get(dotted)
        if value is None:
            raise ConfigError(f"{self.source}: missing required key {dotted!r}")
        return value

    def with_overrides(self, overrides: dict[str, Any]) -> "Conf":
        if not overrides:
            return self
        tree = copy.deepcopy(self._tree)
        for key, value in overrides.items():
            _set_path(tree, key, value)
        try:
            return Conf(_expand(tree), self.source)
        except ConfigError as exc:        # name the overrides: the file itself was valid
            raise ConfigError(str(exc).replace(f"{self.source}: ", f"{self.source} with overrides "
                                               f"{', '.join(overrides)}: ", 1)) from None

    @property
    def warehouse_root(self) -> Path:
        return Path(self.require("warehouse_root"))

    @property
    def cache_dir(self) -> Path:
        return Path(self.require("cache_dir"))


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`a.b=3` -> {"a.b": 3}; values are parsed as YAML scalars."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _read(file: Path) -> dict:
    if not file.is_file():
        raise ConfigError(f"configuration file not found: {file}")
    try:
        tree = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"{file}: top level must be a mapping")
    return tree


# Sections a file of your own replaces whole instead of merging into the default's: a column mapping
# names what your table has (a column left out is absent, not the default's name), and A/B variants
# are the ones you list.
REPLACED_WHOLE = {("source", role, "columns") for role in ("users", "items", "interactions")} | {("ab", "variants")}


def _merge(base: dict, over: dict, path: tuple = ()) -> dict:
    """`over` on top of `base`, section by section (mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        here = (*path, key)
        merge = isinstance(value, dict) and isinstance(base.get(key), dict) and here not in REPLACED_WHOLE
        out[key] = _merge(base[key], value, here) if merge else value
    return out


def load_conf(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> Conf:
    """Load a YAML configuration and apply overrides. A file of your own is read on top of
    conf/local.yaml, so it only needs the keys it changes."""
    file = Path(path) if path else LOCAL_DEFAULT
    tree = _read(file)
    if file.resolve() != LOCAL_DEFAULT.resolve():
        tree = _merge(_read(LOCAL_DEFAULT), tree)
    conf = Conf(_expand(tree), str(file))
    return conf.with_overrides(parse_overrides(overrides))
