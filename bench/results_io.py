"""Where every bench script leaves its results: <name>.json (replaced), <name>.md (appended, with the
command that produced it) and <name>.png, all under bench/results/."""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, results: dict, markdown, plot) -> str:
    """markdown(results, command) -> text; plot(results, path) draws the PNG. Returns the markdown."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2, default=str))
    # the script that ran (a results name such as scoring_explain is not a script's)
    text = markdown(results, " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]))
    with open(RESULTS / f"{name}.md", "a") as f:
        f.write(text)
    plot(results, RESULTS / f"{name}.png")
    return text
