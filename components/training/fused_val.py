"""The fused validation metric the export selects on (ADR 23): dense + lexical as served.

Every val question ranks every val gold page by the best cell of the fused heatmap, dense cell
scores + ``rag.lexical_weight`` × the lexical channel's heatmap (``rag.lexical_scope``), as
``RegionIndex.search`` does (a late-interaction model: MaxSim's heatmap, ADR 28); the top page's region comes from the same map re-weighted with
page-local term weights (``rag.region_term_weights``) at the region map's weight
(``regions.lexical_weight``, ADR 31), as ``region_heatmaps`` does, through
``extract_regions`` with the params' region settings and block snapping. Region hit@1 is over the
questions with a gold box (IoU ≥ ``evaluate.iou_hit``), as the evaluation scores it.

Differences from a full evaluation, on purpose: exhaustive over the val pages (no candidate
stage), float32 cells (no storage codec), and text questions only.
"""

from __future__ import annotations

import numpy as np
import torch

from components.boxes import region_hit
from components.config import Params
from components.data.corpus import Corpus
from components.index.lexical import LexicalChannel
from components.index.pages import PageMeta
from components.model.late_interaction import maxsim_heatmaps, token_cell_scores
from components.regions.extract import extract_regions


class FusedValidation:
    """Built once per training run over the val questions (``samples``) and their gold pages."""

    def __init__(self, params: Params, corpus: Corpus, samples: list):
        self.params = params
        self.page_ids = list(dict.fromkeys(s.page_id for s in samples))
        pages = [corpus.page(pid) for pid in self.page_ids]
        metas = [PageMeta.from_page(p) for p in pages]  # words, blocks and kinds as indexed
        self.blocks = [m.blocks for m in metas]
        self.lexical = LexicalChannel.from_metas(metas, params.model.grid)
        by_id = {q.id: q for q in corpus.questions}
        self.questions = [(s.text, s.page_id, by_id[s.question_id].box) for s in samples]
        self._lexical_maps: list[tuple[np.ndarray, np.ndarray]] | None = None

    def _lexical(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per question: (corpus-weighted, page-weighted) lexical heatmaps of every val page (cached:
        they do not depend on the weights being trained)."""
        if self._lexical_maps is None:
            rag, positions = self.params.rag, np.arange(len(self.page_ids))
            self._lexical_maps = [
                (
                    self.lexical.heatmaps(text, positions, rag.lexical_scope),
                    self.lexical.heatmaps(
                        text, positions, rag.lexical_scope, rag.region_term_weights
                    ),
                )
                for text, _, _ in self.questions
            ]
        return self._lexical_maps

    def score(
        self,
        queries: torch.Tensor,
        page_cells: dict[str, torch.Tensor],
        query_tokens: list[torch.Tensor] | None = None,
    ) -> dict[str, float]:
        """queries [Q, D] in sample order, page_cells {page id: [G*G, D]} -> fused page R@1,
        region hit@1 and their sum (``fused``). With ``query_tokens`` (per question [L, D]; a
        maxsim model) the dense maps are MaxSim's heatmaps (``rag.maxsim_heatmap``), as served."""
        if len(queries) != len(self.questions):
            raise ValueError(
                f"{len(queries)} query vectors for {len(self.questions)} val questions"
            )
        g, w = self.params.model.grid, self.params.rag.lexical_weight
        w_region = self.params.region_lexical_weight()  # the region map's weight, as served
        cells = torch.stack([page_cells[pid] for pid in self.page_ids]).float()
        if query_tokens is not None:
            rule = self.params.rag.maxsim_heatmap
            dense = torch.stack(
                [
                    maxsim_heatmaps(token_cell_scores(t.float(), cells), None, rule)
                    for t in query_tokens
                ]
            )
        else:
            dense = torch.einsum("qd,pnd->qpn", queries.float(), cells)
        dense = dense.reshape(len(queries), -1, g, g).numpy()
        pages, regions = [], []
        for (text, gold, box), maps, (corpus_lex, page_lex) in zip(
            self.questions, dense, self._lexical()
        ):
            fused = maps + w * corpus_lex
            top = int(fused.reshape(len(self.page_ids), -1).max(1).argmax())
            top_id = self.page_ids[top]
            pages.append(float(top_id == gold))
            if box is None:
                continue
            local = maps[top] + w_region * page_lex[top]
            found = extract_regions(
                local,
                self.params.regions,
                top_id,
                blocks=self.blocks[top],
                text_scores=self.lexical.block_scores(text, top)
                if self.params.regions.rule == "text_blocks"
                else None,
            )
            regions.append(
                region_hit(
                    top_id, found[0].box if found else None, gold, box, self.params.evaluate.iou_hit
                )
            )
        page_r1 = float(np.mean(pages)) if pages else 0.0
        hit1 = float(np.mean(regions)) if regions else 0.0
        return {"fused_page_r1": page_r1, "fused_region_hit1": hit1, "fused": page_r1 + hit1}
