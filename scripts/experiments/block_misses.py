"""Block-recall misses of a real-PDF set, straight from its PDFs (no import needed).

Usage (from the repository root):

    PYTHONPATH=. python scripts/experiments/block_misses.py /work/data/realdocs/dev \
        [--questions FILE] [--kind cloze] [--render N --render-dir DIR] [--json OUT] [--list]

For every question with a box, the blocks of its page (``components.data.pdf_layout``, as the
importer records them) are matched against the gold box; a question whose best block has
IoU < 0.5 is a miss. It prints recall per kind and, with ``--list``, each miss with its gold
box, the gold unit's text (re-derived by ``components.data.gold_units``), the best block's
kind, box and text, and the IoU. ``--render N`` draws N seeded misses per kind: gold box in
green, blocks in blue with their kind, the best block in red.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.data.gold_units import page_units
from components.data.pdf_layout import pdf_page_blocks
from components.evaluation.block_recall import IOU_THRESHOLD
from components.evaluation.metrics import iou


def page_blocks_of(docs: Path, doc: str, pages: set[int]) -> dict[int, list]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(docs / doc))
    try:
        return {i: pdf_page_blocks(pdf[i]) for i in sorted(pages)}
    finally:
        pdf.close()


def gold_text(docs: Path, q: dict, cache: dict) -> str:
    """The gold unit's text: the unit index is the question id's last field."""
    key = (q["doc"], q["page"])
    if key not in cache:
        cache[key] = page_units(docs / q["doc"], [q["page"]])[0]
    idx = int(q["id"].rsplit(":", 1)[1])
    units = cache[key].units
    return units[idx].text if idx < len(units) else "?"


def scan(root: Path, questions: Path | None = None) -> tuple[list[dict], dict]:
    qs = [
        json.loads(line)
        for line in (questions or root / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    qs = [q for q in qs if q.get("box")]
    wanted: dict[str, set[int]] = defaultdict(set)
    for q in qs:
        wanted[q["doc"]].add(q["page"])
    blocks = {
        (doc, p): b
        for doc, pages in wanted.items()
        for p, b in page_blocks_of(root / "docs", doc, pages).items()
    }
    rows = []
    for q in qs:
        scored = [(iou(b.box, q["box"]), b) for b in blocks[(q["doc"], q["page"])]]
        best, block = max(scored, key=lambda sb: sb[0], default=(0.0, None))
        rows.append({"q": q, "iou": best, "block": block})
    return rows, blocks


def summary(rows: list[dict]) -> dict:
    by: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        hit = r["iou"] >= IOU_THRESHOLD
        by["overall"].append(hit)
        by[r["q"]["type"]].append(hit)
    return {k: {"n": len(v), "recall": round(sum(v) / len(v), 4)} for k, v in sorted(by.items())}


def render(root: Path, row: dict, blocks: list, out: Path) -> None:
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    q = row["q"]
    pdf = pdfium.PdfDocument(str(root / "docs" / q["doc"]))
    try:
        image = pdf[q["page"]].render(scale=1.6).to_pil().convert("RGB")
    finally:
        pdf.close()
    w, h = image.size
    draw = ImageDraw.Draw(image)
    scale = lambda b: (b[0] * w, b[1] * h, b[2] * w, b[3] * h)
    for b in blocks:
        draw.rectangle(scale(b.box), outline=(40, 90, 230), width=1)
        draw.text((b.box[0] * w, b.box[1] * h - 9), b.kind, fill=(40, 90, 230))
    if row["block"] is not None:
        draw.rectangle(scale(row["block"].box), outline=(230, 30, 30), width=2)
    draw.rectangle(scale(q["box"]), outline=(20, 170, 20), width=3)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a realdocs set: docs/ and questions.jsonl")
    ap.add_argument("--questions", type=Path, default=None)
    ap.add_argument("--kind", default=None)
    ap.add_argument("--list", action="store_true", help="print every miss")
    ap.add_argument("--render", type=int, default=0, help="misses drawn per kind")
    ap.add_argument("--render-dir", type=Path, default=Path(".regionops/block_misses"))
    ap.add_argument("--json", type=Path, default=None, help="write the summary and misses here")
    args = ap.parse_args()
    rows, blocks = scan(args.root, args.questions)
    result = summary(rows)
    print(json.dumps(result, indent=1))
    misses = [r for r in rows if r["iou"] < IOU_THRESHOLD and (args.kind in (None, r["q"]["type"]))]
    print(
        "best-block kinds of misses:",
        dict(
            Counter(
                (r["q"]["type"], r["block"].kind if r["block"] else None) for r in misses
            ).most_common()
        ),
    )
    cache: dict = {}
    records = []
    for r in misses:
        q, b = r["q"], r["block"]
        rec = {
            "id": q["id"],
            "type": q["type"],
            "iou": round(r["iou"], 3),
            "gold_box": q["box"],
            "gold_text": gold_text(args.root / "docs", q, cache)[:300],
            "block_kind": b.kind if b else None,
            "block_box": list(b.box) if b else None,
            "block_text": b.text[:300] if b else None,
        }
        records.append(rec)
        if args.list:
            print(json.dumps(rec, ensure_ascii=False))
    if args.render:
        rng = random.Random(0)
        by_kind: dict[str, list] = defaultdict(list)
        for r in misses:
            by_kind[r["q"]["type"]].append(r)
        for kind, rs in by_kind.items():
            for r in rng.sample(rs, min(args.render, len(rs))):
                q = r["q"]
                name = q["id"].replace("/", "_").replace("#", "_").replace(":", "_") + ".png"
                render(args.root, r, blocks[(q["doc"], q["page"])], args.render_dir / kind / name)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": result, "misses": records}, indent=1) + "\n")


if __name__ == "__main__":
    main()
