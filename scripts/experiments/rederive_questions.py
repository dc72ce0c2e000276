"""Re-derive a realdocs set's questions with this checkout's gold code, into a new folder.

Usage (from the repository root):

    PYTHONPATH=. python scripts/experiments/rederive_questions.py /work/data/realdocs/dev OUT

Reads the set's ``manifest.json`` (documents in build order, seed) and derives each document's
questions exactly as ``components.data.realdocs.build_set`` does (one ``seen`` set across the
set, dev questions marked ``split: test``), writing ``OUT/questions.jsonl`` and
``OUT/summary.json``; ``OUT/docs`` links to the set's documents (which are not copied or
changed). Then compare kinds and counts with the set's own ``summary.json``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.data.corpus import write_jsonl_atomic
from components.data.derived_questions import KINDS, derive_questions


def main(src: Path, out: Path) -> dict:
    manifest = json.loads((src / "manifest.json").read_text("utf-8"))
    params = manifest["params"]
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "docs").exists():
        (out / "docs").symlink_to((src / "docs").resolve())
    questions: list[dict] = []
    skips: Counter = Counter()
    seen: set[str] = set()
    for entry in manifest["docs"]:
        derived = derive_questions(
            src / "docs" / entry["doc"],
            entry["doc"],
            manifest["seed"],
            params["labelled_fraction"],
            params["max_questions_per_page"],
            seen=seen,
        )
        for q in derived.questions:
            if manifest["set"] == "dev":
                q["split"] = "test"
        questions += derived.questions
        skips.update(derived.skips)
    write_jsonl_atomic(out / "questions.jsonl", questions)
    by_kind = Counter(q["type"] for q in questions)
    summary = {
        "set": manifest["set"],
        "questions": len(questions),
        "questions_by_kind": {k: by_kind.get(k, 0) for k in KINDS},
        "skips": dict(sorted(skips.items())),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    return summary


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2])), indent=2))
