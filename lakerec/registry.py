"""The model registry: one directory per version, a champion pointer, champion/challenger promotion.

<registry>/
  versions/v0001/       written to a temporary folder and renamed, so a version is whole or absent
    model.json          configs, textualizer template, backbone reference, lineage, metrics
    adapter/            the LoRA adapter in peft's format (adapter_config.json + weights)
    trainable.safetensors   every trained tensor (LoRA, position tables, projectors, heads)
    id_model.safetensors    the SASRec ID model
    text_view.safetensors   the text view (SASRec over item text features), only when it is served
    id_partners.safetensors the ID model's other seed members (a SASRec seed ensemble), only when it has them
    item_ids.npy        catalogue order of the item matrix and the ID embeddings
    catalogue.parquet   the items' fields in that order (the item matrix is computed from them at export)
  champion.json         {"version": ..., "valid_ndcg@10": ..., "promoted_at": ...}
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from lakerec.errors import ConfigError

PROMOTION_METRIC = "valid_ndcg@10"


def training_conf_hash(profile: dict, textualize: dict) -> str:
    """Identity of what a training run was asked to do: the profile as resolved (every setting, code
    defaults included, so a changed default counts as a change) and the prompt settings."""
    spec = {"profile": profile, "textualize": textualize}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def bundle_path(bundles_root: str | Path, version: str, precision: str) -> Path:
    return Path(bundles_root) / version / precision


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


class Registry:
    def __init__(self, root: str | Path, bundles_root: str | Path | None = None):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self._bundles_root = Path(bundles_root) if bundles_root else None

    @classmethod
    def from_conf(cls, conf) -> "Registry":
        return cls(conf.get("models.registry_dir") or conf.warehouse_root.parent / "models",
                   conf.get("models.bundles_dir"))

    @property
    def bundles_root(self) -> Path:
        """Where `lakerec export` writes bundles: <bundles_root>/<version>/<precision>/."""
        return self._bundles_root or self.root.parent / "bundles"

    def bundle_dir(self, version: str, precision: str) -> Path:
        return bundle_path(self.bundles_root, version, precision)

    def versions(self) -> list[str]:
        if not self.versions_dir.exists():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / "model.json").exists())

    def describe(self, version: str) -> dict:
        return json.loads((self.versions_dir / version / "model.json").read_text())

    def champion(self) -> dict | None:
        pointer = self.root / "champion.json"
        return json.loads(pointer.read_text()) if pointer.exists() else None

    def resolve(self, version: str) -> Path:
        """'champion', 'latest' (the newest registered) or a version name -> its directory; a clear
        error when absent."""
        if version == "latest":
            if not self.versions():
                raise ConfigError(f"no model registered in {self.versions_dir}; run `lakerec train` first")
            version = self.versions()[-1]
        if version == "champion":
            champ = self.champion()
            if champ is None:
                raise ConfigError(f"no champion model in {self.root}; run `lakerec train` first")
            version = champ["version"]
        path = self.versions_dir / version
        if not (path / "model.json").exists():
            known = ", ".join(self.versions()) or "none"
            raise ConfigError(f"model version {version!r} not found in {self.versions_dir} (known: {known})")
        return path

    def staging(self) -> tuple[str, Path]:
        """A fresh version name and an empty temporary directory to write it into."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        existing = [int(v[1:]) for v in self.versions() if v[1:].isdigit()]
        version = f"v{(max(existing) + 1 if existing else 1):04d}"
        tmp = self.versions_dir / f".{version}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        return version, tmp

    def commit(self, version: str, tmp: Path) -> Path:
        final = self.versions_dir / version
        os.replace(tmp, final)
        return final

    def promote_if_better(self, version: str, metrics: dict) -> tuple[bool, str]:
        """A challenger becomes champion when its validation NDCG@10 is at least that of the ID model
        trained in the same run on the same users (`id_model_valid_ndcg@10`: SASRec or its seed
        ensemble; `sasrec_valid_ndcg@10` for versions from before ensembles; when given) and at least
        the champion's, measured on the same number of validation users (a quick-profile model ranked on a slice
        is not comparable with a full-profile champion; `lakerec models --promote` decides then)."""
        score = float(metrics[PROMOTION_METRIC])
        id_model = metrics.get("id_model_" + PROMOTION_METRIC, metrics.get("sasrec_" + PROMOTION_METRIC))
        if id_model is not None and score < float(id_model):
            return False, (f"{version} stays challenger: {PROMOTION_METRIC} {score:.4f} is below its own ID model's "
                           f"(same run, same users) {float(id_model):.4f}")
        champ = self.champion()
        if champ is not None and champ.get("valid_users") != metrics.get("valid_users"):
            return False, (f"{version} stays challenger: validated on {metrics.get('valid_users')} users, champion "
                           f"{champ['version']} on {champ.get('valid_users')}; not comparable "
                           f"(promote by hand: lakerec models --promote {version})")
        if champ is not None and score < float(champ[PROMOTION_METRIC]):
            return False, (f"{version} stays challenger: {PROMOTION_METRIC} {score:.4f} < champion "
                           f"{champ['version']} {float(champ[PROMOTION_METRIC]):.4f}")
        self._point_to(version, score, metrics.get("valid_users"), champ)
        return True, f"{version} is champion ({PROMOTION_METRIC} {score:.4f})"

    def champion_trained_on(self, run_date: str, input_versions: dict, conf_hash: str) -> str | None:
        """The champion's version when it was trained for this run date on these table versions with
        these settings (re-training would repeat the same work), else None."""
        champ = self.champion()
        if champ is None:
            return None
        lineage = self.describe(champ["version"]).get("lineage", {})
        same = (lineage.get("run_date") == run_date and lineage.get("conf_hash") == conf_hash
                and lineage.get("input_table_versions") == input_versions)
        return champ["version"] if same else None

    def promote_if_better_than_champion(self, version: str) -> tuple[bool, str]:
        """promote_if_better with the metrics recorded at training (`lakerec models --promote-if-better`)."""
        path = self.resolve(version)
        metrics = self.describe(path.name).get("metrics", {})
        keys = ("valid_users", "id_model_" + PROMOTION_METRIC, "sasrec_" + PROMOTION_METRIC)
        return self.promote_if_better(path.name, {PROMOTION_METRIC: metrics.get(PROMOTION_METRIC, 0.0),
                                                  **{key: metrics[key] for key in keys if key in metrics}})

    def promote(self, version: str) -> str:
        """Make a registered version champion regardless of metrics (a deliberate human decision)."""
        self.resolve(version)
        metrics = self.describe(version).get("metrics", {})
        self._point_to(version, float(metrics.get(PROMOTION_METRIC, 0.0)), metrics.get("valid_users"),
                       self.champion())
        return f"{version} is champion (promoted by hand)"

    def _point_to(self, version: str, score: float, valid_users, previous: dict | None) -> None:
        pointer = {"version": version, PROMOTION_METRIC: score, "valid_users": valid_users,
                   "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   "previous": previous["version"] if previous else None}
        tmp = self.root / f".champion.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(pointer, indent=2))
        os.replace(tmp, self.root / "champion.json")
