"""Two evaluations' ``per_question.jsonl`` joined question by question, the second run's systems
renamed ``<system><suffix>``, so ``paired_systems`` can pair a system across runs (ADR 28), e.g.
``python -m scripts.experiments.join_runs NEW/per_question.jsonl OLD/per_question.jsonl
--suffix @max_cell --out joined.jsonl`` then ``python -m scripts.experiments.paired_systems
joined.jsonl --system regionops_dense --against regionops_dense@max_cell dense_blocks``.
Questions present in only one run are left out and counted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--suffix", required=True, help="appended to the second run's system names")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()

    def rows(path: Path) -> dict[str, dict]:
        return {r["id"]: r for r in map(json.loads, path.read_text("utf-8").splitlines())}

    first, second = rows(args.first), rows(args.second)
    joined = []
    for qid, row in first.items():
        if qid in second:
            extra = {f"{name}{args.suffix}": s for name, s in second[qid]["scores"].items()}
            joined.append({"id": qid, "type": row.get("type"), "scores": row["scores"] | extra})
    args.out.write_text("".join(json.dumps(r) + "\n" for r in joined), "utf-8")
    print(
        f"{len(joined)} questions in both runs; {len(first) - len(joined)} only in the first, "
        f"{len(second) - len(joined)} only in the second"
    )


if __name__ == "__main__":
    main()
