"""YAML configuration shipped with LakeRec: `local.yaml` (one machine, no cluster) and
`cluster-gpu.yaml` (GPU executors on YARN; read on top of local.yaml). Loaded by `lakerec.config`."""
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent
LOCAL_DEFAULT = CONF_DIR / "local.yaml"
