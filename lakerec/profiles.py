"""Training profiles: `train.profiles.<name>` in conf, checked against the dataclasses of each
model and trainer when a run loads one (an unknown key is an error, not silently ignored)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from lakerec.config import Conf
from lakerec.errors import ConfigError
from lakerec.model.device import PRECISIONS
from lakerec.model.recllm import RecLLMConfig
from lakerec.model.sasrec import SASRecConfig
from lakerec.model.train_llm import LLMTrainConfig
from lakerec.model.train_sasrec import TrainConfig


@dataclass
class Profile:
    name: str
    seeds: list
    sasrec: SASRecConfig
    sasrec_train: TrainConfig
    llm: RecLLMConfig
    llm_train: LLMTrainConfig
    baselines: dict = field(default_factory=dict)
    # The ID model: SASRec trained from this many seeds, its score the members' mean (a seed ensemble;
    # 1 = SASRec alone). Each member costs one SASRec training.
    id_members: int = 1
    text_view: bool = False            # train the text view (SASRec over LM text features) for the ID side
    # An added term (text view, LM) is served only when its out-of-fold validation gain holds in this
    # share of paired bootstrap resamples (hybrid.choose_weights); 0 keeps any out-of-fold gain.
    # 0.95 dropped the text view on two of three seeds at 93% and 90% (docs/model.md).
    mix_confidence: float = 0.8

    def settings(self) -> dict:
        """Every setting as resolved, code defaults included (the registry's training conf hash)."""
        return asdict(self)


def load_profile(conf: Conf, name: str | None) -> Profile:
    name = name or conf.get("train.profile")
    raw = conf.get("train.profiles").get(name)
    if raw is None:
        raise ConfigError(f"train.profiles.{name} is not defined (profiles: {sorted(conf.get('train.profiles'))})")
    known = {f.name for f in fields(Profile)} - {"name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"train.profiles.{name}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    members = raw.get("id_members", 1)
    if isinstance(members, str) and members.strip().isdigit():       # "${ID_MEMBERS:-2}" interpolates to text
        members = int(members)
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise ConfigError(f"train.profiles.{name}.id_members: {members!r} (a whole number, at least 1: SASRec alone)")
    precision = raw.get("llm_train", {}).get("precision", "auto")
    if precision not in PRECISIONS:
        raise ConfigError(f"train.profiles.{name}.llm_train.precision: {precision!r} (one of {', '.join(PRECISIONS)})")
    if not 0.0 <= float(raw.get("mix_confidence", 0.0)) <= 1.0:
        raise ConfigError(f"train.profiles.{name}.mix_confidence: {raw['mix_confidence']} is not a share between 0 and 1")
    try:
        return Profile(name=name, seeds=list(raw.get("seeds", [0])),
                       sasrec=SASRecConfig(n_items=0, **raw.get("sasrec", {})),
                       sasrec_train=TrainConfig(**raw.get("sasrec_train", {})),
                       llm=RecLLMConfig(**raw.get("llm", {})),
                       llm_train=LLMTrainConfig(**raw.get("llm_train", {})),
                       baselines=raw.get("baselines", {}), text_view=bool(raw.get("text_view", False)),
                       id_members=members,
                       **({"mix_confidence": float(raw["mix_confidence"])} if "mix_confidence" in raw else {}))
    except TypeError as exc:
        raise ConfigError(f"train.profiles.{name}: {exc}") from None
