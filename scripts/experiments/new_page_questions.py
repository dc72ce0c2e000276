"""The question ids of a larger realdocs set that sit on source pages the smaller set lacks.

A larger judge (``scripts/real_docs.py --set realdocs.dev_page_budget=720``) holds most of the
default dev set's pages; its questions on the *other* pages are a fresh sample, independent of
every figure measured on the default set. Pages are matched by (source PDF, source page) from
each set's manifest.json, since a page's index inside a subset PDF shifts with the pages chosen.

    python -m scripts.experiments.new_page_questions LARGER/dev SMALLER/dev --out new_ids.txt

Then e.g. ``python -m scripts.experiments.seed_runs_paired ... --only-ids new_ids.txt`` (ADR 34).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def source_pages(set_dir: Path) -> dict[tuple[str, int], tuple[str, int]]:
    """(doc, page in the subset PDF) -> (source PDF, page in the source PDF)."""
    manifest = json.loads((set_dir / "manifest.json").read_text("utf-8"))
    return {
        (d["doc"], i): (d["source"], page)
        for d in manifest["docs"]
        for i, page in enumerate(d["source_pages"])
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "larger", type=Path, help="the larger set's folder (manifest.json, questions.jsonl)"
    )
    ap.add_argument("smaller", type=Path, help="the default set's folder")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    larger, smaller = source_pages(args.larger), set(source_pages(args.smaller).values())
    lines = (args.larger / "questions.jsonl").read_text("utf-8").splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    unknown = [q["id"] for q in questions if (q["doc"], q["page"]) not in larger]
    if unknown:
        raise SystemExit(
            f"{len(unknown)} questions on pages the manifest lacks, e.g. {unknown[:3]}"
        )
    new = [q["id"] for q in questions if larger[(q["doc"], q["page"])] not in smaller]
    args.out.write_text("".join(f"{i}\n" for i in new), "utf-8")
    shared = len(set(larger.values()) & smaller)
    print(
        f"{len(new)} of {len(questions)} questions on {len(larger) - shared} pages the smaller set "
        f"lacks ({shared} pages shared) -> {args.out}"
    )


if __name__ == "__main__":
    main()
