"""`lakerec models [--json]`: registered model versions, their metrics, and the champion."""
from __future__ import annotations

import json

from lakerec.registry import Registry


def rows(conf) -> list[dict]:
    registry = Registry.from_conf(conf)
    champion = (registry.champion() or {}).get("version")
    out = []
    for version in registry.versions():
        info = registry.describe(version)
        test = info.get("metrics", {}).get("test", {})
        out.append({"version": version, "champion": version == champion, "created_at": info.get("created_at"),
                    "profile": info.get("profile"), "backbone": info.get("backbone", {}).get("name"),
                    "valid_ndcg@10": info.get("metrics", {}).get("valid_ndcg@10"),
                    "id_model_valid_ndcg@10": info.get("metrics", {}).get(
                        "id_model_valid_ndcg@10", info.get("metrics", {}).get("sasrec_valid_ndcg@10")),
                    "sasrec_valid_ndcg@10": info.get("metrics", {}).get("sasrec_valid_ndcg@10"),
                    "serving": info.get("hybrid", {}).get("serving"),
                    "lm_weight": info.get("hybrid", {}).get("lm_weight"),
                    "test_ndcg@10": test.get("ndcg@10"), "test_hr@10": test.get("hr@10"),
                    "run_date": info.get("lineage", {}).get("run_date"),
                    "warm_start_from": info.get("lineage", {}).get("warm_start_from"),
                    "path": str(registry.versions_dir / version)})
    return out


def run(conf, as_json: bool = False, promote: str | None = None, promote_if_better: str | None = None) -> None:
    if promote:
        print(Registry.from_conf(conf).promote(promote))
    if promote_if_better:
        print(Registry.from_conf(conf).promote_if_better_than_champion(promote_if_better)[1])
    listing = rows(conf)
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    if not listing:
        print(f"no models registered in {Registry.from_conf(conf).root}; run `lakerec train`")
        return
    print(f"{'version':8} {'champion':8} {'profile':7} {'run_date':10} {'valid ndcg@10':>13} {'ID model valid':>14} "
          f"{'SASRec valid':>12} "
          f"{'test ndcg@10':>12} {'test hr@10':>10} {'serves':18} warm start")
    for r in listing:
        fmt = lambda v: f"{v:.4f}" if isinstance(v, (int, float)) else "-"
        print(f"{r['version']:8} {'*' if r['champion'] else '':8} {r['profile'] or '-':7} {r['run_date'] or '-':10} "
              f"{fmt(r['valid_ndcg@10']):>13} {fmt(r['id_model_valid_ndcg@10']):>14} "
              f"{fmt(r['sasrec_valid_ndcg@10']):>12} {fmt(r['test_ndcg@10']):>12} "
              f"{fmt(r['test_hr@10']):>10} {r['serving'] or '-':18} {r['warm_start_from'] or '-'}")
