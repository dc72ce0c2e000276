"""Which rule picks the region on real pages: the served heatmap regions vs block scores (ADR 27).

Imports a folder through ``regionops import``'s path and indexes it with the model (both cached
under ``--work``), runs the served search for every text question with a gold page and box, and
scores region hit@1 (gold page and IoU >= 0.5) of several rules over the same candidate pages:

  served           what ``regionops`` serves today: heatmap -> threshold -> components -> snap;
  bm25_blocks      the baseline: BM25+ over every block of the corpus, best block;
  top_page_bm25    the served top page, its block with the best BM25+ score;
  blocks_w{w}      every block of the ``--pages`` best candidate pages scored by
                   dense(block) + w * bm25(block) / max bm25 over those blocks, best block, where
                   dense(block) is the fused heatmap's best cell in the block (lexical term map
                   included, exactly as served);
  mean_w{w}        the same with the fused heatmap's mean over the block's cells (as snapping scores);
  dense_w{w}       the same with the dense channel's heatmap alone (no lexical term map).

Choose on the real *train* set (the packages never evaluated), report on dev. Run from the
repository root, e.g. ``python -m scripts.experiments.region_rules_ab --model data/model
--docs /work/data/realdocs/train/docs --questions /work/data/rd4/train/questions.jsonl
--work .regionops/realtrain-work --out reports/region_rules_train.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.config import load_params
from components.data.corpus import load_corpus
from components.data.importer import import_documents
from components.data.layout import page_blocks
from components.evaluation.baselines import BM25Blocks
from components.evaluation.metrics import iou
from components.index.build import build_index
from components.rag.engine import RagEngine
from components.regions.grid import box_to_cells

WEIGHTS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, type=Path, help="training export (with retriever/)")
    ap.add_argument("--docs", required=True, type=Path)
    ap.add_argument("--questions", required=True, type=Path)
    ap.add_argument(
        "--work", required=True, type=Path, help="cache folder: imported corpus + index"
    )
    ap.add_argument("--pages", type=int, default=3, help="candidate pages whose blocks compete")
    ap.add_argument(
        "--limit", type=int, default=0, help="score only the first N questions (0 = all)"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    params = load_params(Path("params.yaml"))
    corpus_dir, index_dir = args.work / "corpus", args.work / "index"
    if not (corpus_dir / "pages.jsonl").is_file():
        import_documents(args.docs, args.questions, corpus_dir, params, collection="eval")
    corpus = load_corpus(corpus_dir)
    if not index_dir.is_dir():
        build_index(params, corpus, args.model, index_dir)
    engine = RagEngine.from_dirs(args.model, index_dir, params)
    index, grid = engine.index, engine.index.grid
    blocks = {pid: page_blocks(corpus.page(pid)) for pid in index.page_ids if corpus.has_page(pid)}
    flat = [b for pid in index.page_ids for b in blocks.get(pid, [])]
    bm25 = BM25Blocks(flat)
    start, block_rows = 0, {}
    for pid in index.page_ids:
        n = len(blocks.get(pid, []))
        block_rows[pid] = np.arange(start, start + n)
        start += n
    cells = {id(b): box_to_cells(tuple(b.box), grid) for b in flat}

    questions = [q for q in corpus.questions if q.page_id and q.box and not q.query_image]
    if args.limit:
        questions = questions[: args.limit]
    hits_by_rule: dict[str, list[bool]] = {}

    def record(rule: str, page: str | None, box, q) -> None:
        ok = page == q.page_id and box is not None and iou(tuple(box), tuple(q.box)) >= 0.5
        hits_by_rule.setdefault(rule, []).append(bool(ok))

    for i, q in enumerate(questions):
        text, qv = engine.query(q.question, None)
        hits = engine.search_vector(qv, question=text)
        served = engine.answer_vector(text, qv, k=1, hits=hits)
        record("served", served.page_id, served.boxes[0] if served.boxes else None, q)
        scores = bm25.scores(text)
        best = int(np.argmax(scores)) if scores.any() else None
        record(
            "bm25_blocks",
            flat[best].page_id if best is not None else None,
            flat[best].box if best is not None else None,
            q,
        )
        maps = engine.region_maps(hits, text)
        top = [h.page_id for h in sorted(hits, key=lambda h: -float(maps[h.page_id].max()))][
            : args.pages
        ]
        if top and len(block_rows[top[0]]):
            rows = block_rows[top[0]]
            b = flat[rows[int(np.argmax(scores[rows]))]]
            record("top_page_bm25", b.page_id, b.box, q)
        else:
            record("top_page_bm25", None, None, q)
        cand = [(pid, flat[r]) for pid in top for r in block_rows[pid]]
        if not cand:
            for name in ("blocks", "mean", "dense"):
                for w in WEIGHTS:
                    record(f"{name}_w{w}", None, None, q)
            continue
        positions = np.array([index.page_ids.index(pid) for pid in top])
        dense_maps = dict(zip(top, index.heatmaps(positions, qv)))

        def block_values(source, reduce, cand=cand):
            return np.array(
                [
                    float(reduce(source[pid][cells[id(b)]])) if cells[id(b)].any() else -1.0
                    for pid, b in cand
                ]
            )

        lex = np.array(
            [scores[block_rows[pid][j]] for pid in top for j in range(len(block_rows[pid]))]
        )
        lex = lex / lex.max() if lex.max() > 0 else lex
        for name, dense in (
            ("blocks", block_values(maps, np.max)),
            ("mean", block_values(maps, np.mean)),
            ("dense", block_values(dense_maps, np.max)),
        ):
            for w in WEIGHTS:
                pick = int(np.argmax(dense + w * lex))
                record(f"{name}_w{w}", cand[pick][0], cand[pick][1].box, q)
        if (i + 1) % 100 == 0:
            print(
                i + 1, {r: round(float(np.mean(v)), 3) for r, v in hits_by_rule.items()}, flush=True
            )
    table = {r: round(float(np.mean(v)), 4) for r, v in hits_by_rule.items()}
    out = {
        "n_questions": len(questions),
        "pages": args.pages,
        "region_hit1": table,
        "hits": {r: [int(x) for x in v] for r, v in hits_by_rule.items()},
    }
    print(json.dumps({k: v for k, v in out.items() if k != "hits"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out) + "\n", "utf-8")


if __name__ == "__main__":
    main()
