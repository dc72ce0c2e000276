"""Max-cell vs MaxSim page scoring of one retriever on a folder of documents (ADR 23).

Imports the folder through ``regionops import``'s path (cached under ``--work``), encodes every
page with the model (float32, no index), and ranks every page exhaustively for every text
question with a gold page under two rules:

  max_cell  the page's best cell for the mean query vector (what the index serves);
  maxsim    each query token's best cell on the page, averaged over tokens (late interaction);
  max_cell_sentence  max cell for normalize(mean of the raw MiniLM token states): the query as
            sentence-transformers (and ``dense_blocks``) embed it (meaningful at step 0 only).

The dense channel alone (no lexical fusion): it decides which rule the model trains and serves
by. Run from the repository root, e.g.
``python -m scripts.experiments.page_scoring_ab --model runs/step0 --docs /work/data/realdocs/dev/docs
--questions /work/data/realdocs/dev/questions.jsonl --work .regionops/realdev``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.config import load_params
from components.data.corpus import load_corpus
from components.data.importer import import_documents
from components.model.encode import encode_pages
from components.model.io import load_retriever


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--model", required=True, help="training export (with retriever/) or retriever folder"
    )
    ap.add_argument("--docs", required=True, type=Path)
    ap.add_argument("--questions", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path, help="cache folder for the imported corpus")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--block-context", type=float, help="override the model's model.block_context")
    ap.add_argument(
        "--max-cell-only", action="store_true", help="skip MaxSim (its einsum dominates)"
    )
    ap.add_argument("--context-unit", choices=["page", "block"], help="override model.context_unit")
    args = ap.parse_args()
    params = load_params(Path("params.yaml"))
    corpus_dir = args.work / "corpus"
    if not (corpus_dir / "pages.jsonl").is_file():
        import_documents(args.docs, args.questions, corpus_dir, params, collection="eval")
    corpus = load_corpus(corpus_dir)
    model_dir = Path(args.model)
    model = load_retriever(
        model_dir / "retriever" if (model_dir / "retriever").is_dir() else model_dir
    )
    if args.block_context is not None:
        model.featurizer.block_context = args.block_context
    if args.context_unit is not None:
        model.featurizer.context_unit = args.context_unit
    pages = list(corpus.pages)
    cells = torch.from_numpy(encode_pages(model, corpus, pages, progress=False))  # [P, N, D]
    row = {p.id: i for i, p in enumerate(pages)}
    questions = [q for q in corpus.questions if q.page_id in row and not q.query_image]
    hits = {"max_cell": [], "maxsim": [], "max_cell_sentence": []}
    with torch.inference_mode():
        for i in range(0, len(questions), 32):
            chunk = questions[i : i + 32]
            enc = model.tokenize_queries([q.question for q in chunk])
            tokens = model.encode_query_token_vectors(enc["input_ids"], enc["attention_mask"])
            mask = enc["attention_mask"].to(tokens.dtype)
            mean = tokens.sum(1) / mask.sum(1, keepdim=True)
            max_cell = torch.einsum("bd,pnd->bpn", mean, cells).max(-1).values
            if args.max_cell_only:
                maxsim = torch.zeros_like(max_cell)
            else:
                per_token = torch.einsum("bld,pnd->bpln", tokens, cells).max(-1).values  # [B, P, L]
                maxsim = (per_token * mask[:, None, :]).sum(-1) / mask.sum(-1)[:, None]
            # The query as sentence-transformers embeds it: normalize(mean of the raw token states).
            states = model.text(**enc).last_hidden_state
            sentence = F.normalize(
                (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1
            )
            max_cell_sentence = torch.einsum("bd,pnd->bpn", sentence, cells).max(-1).values
            gold = torch.tensor([row[q.page_id] for q in chunk])
            hits["max_cell_sentence"] += (max_cell_sentence.argmax(-1) == gold).tolist()
            hits["max_cell"] += (max_cell.argmax(-1) == gold).tolist()
            hits["maxsim"] += (maxsim.argmax(-1) == gold).tolist()
    if args.max_cell_only:
        del hits["maxsim"]
        hits["maxsim"] = hits["max_cell"]  # so the overlap counts below stay defined (all "both")
    result = {
        "model": str(model_dir),
        "block_context": model.featurizer.block_context,
        "context_unit": model.featurizer.context_unit,
        "pages": len(pages),
        "questions": len(questions),
        "page_r1": {
            rule: float(np.mean(h))
            for rule, h in hits.items()
            if not (args.max_cell_only and rule == "maxsim")
        },
        "both_right": int(np.sum(np.array(hits["max_cell"]) & np.array(hits["maxsim"]))),
        "only_max_cell": int(np.sum(np.array(hits["max_cell"]) & ~np.array(hits["maxsim"]))),
        "only_maxsim": int(np.sum(~np.array(hits["max_cell"]) & np.array(hits["maxsim"]))),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
