"""`lakerec info [--json]`: where the warehouse and every table live, and the versions in use."""
from __future__ import annotations

import json
import re
import platform
from importlib import metadata

import yaml

from lakerec import __version__
from lakerec.metastore import embedded_metastore
from lakerec.runs import abandoned_runs
from lakerec.sources.schema import ROLES, mapping
from lakerec.tables import describe, latest_version, local_path, table_exists


def configured_tables(conf) -> list[str]:
    names = [mapping(conf, role)[0] for role in ROLES]
    names += [name for name in (conf.get("tables") or {}).values()]
    return list(dict.fromkeys(names))


def collect(spark, conf) -> dict:
    tables, missing, versions, views = {}, [], {}, []
    for name in configured_tables(conf):
        if not table_exists(spark, name):
            missing.append(name)
            continue
        facts, fq = describe(spark, name), f"spark_catalog.{name}"
        if facts.get("Type") == "VIEW":
            views.append(fq)
            continue
        tables[fq] = local_path(facts["Location"])
        versions[fq] = latest_version(spark, name) if (facts.get("Provider") or "").lower() == "delta" else None
    jars = spark.sparkContext.getConf().get("spark.jars", "")
    return {
        "lakerec_version": __version__,
        "warehouse": str(conf.warehouse_root),
        "metastore": str(embedded_metastore(conf) or conf.get("spark.metastore.url") or "") or None,
        "conf": conf.source,
        "tables": tables,
        "table_versions": versions,
        "views": views,
        "missing_tables": missing,
        "abandoned_runs": abandoned_runs(spark, conf),
        "configuration": effective_configuration(conf),
        "versions": {
            "spark": spark.version,
            "delta": metadata.version("delta-spark"),
            "delta_jars": "local folder" if jars else "spark.jars.packages",
            "python": platform.python_version(),
            "lakerec": __version__,
            "pyarrow": metadata.version("pyarrow"),
        },
    }


SECRET = re.compile(r"password|secret|token|credential", re.IGNORECASE)
URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def masked(node):
    """Values under secret-looking keys -> "***"; user:password@ in URLs -> ***@."""
    if isinstance(node, dict):
        return {k: "***" if SECRET.search(str(k)) and node[k] else masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [masked(v) for v in node]
    return URL_USERINFO.sub("***@", node) if isinstance(node, str) else node


def effective_configuration(conf) -> dict:
    """The merged, validated configuration every job runs with, secrets masked."""
    return masked(conf.settings.model_dump())


def render(info: dict) -> str:
    lines = [f"LakeRec {info['lakerec_version']}  (conf: {info['conf']})",
             f"warehouse: {info['warehouse']}"]
    if info.get("metastore"):
        lines.append(f"metastore: {info['metastore']}")
    lines.append("tables:")
    for name, loc in info["tables"].items():
        lines.append(f"  {name:45s} v{info['table_versions'][name]}  {loc}")
    for name in info["views"]:
        lines.append(f"  {name:45s} (view)")
    for name in info["missing_tables"]:
        lines.append(f"  {name:45s} (not created yet)")
    for r in info.get("abandoned_runs", []):
        lines.append(f"abandoned run: {r['job']} for {r['run_date']} (run_id {r['run_id']}, started {r['started_at']}, "
                     f"process {r['pid']} gone): it did not finish; re-run the date (its writes are all or nothing)")
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    lines.append("effective configuration (conf/local.yaml, your file and --set, merged and validated):")
    lines += ["  " + line for line in yaml.safe_dump(info["configuration"], sort_keys=False).splitlines()]
    return "\n".join(lines)


def run(spark, conf, as_json: bool) -> None:
    info = collect(spark, conf)
    print(json.dumps(info, indent=2) if as_json else render(info))
