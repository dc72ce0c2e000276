"""Region settings chosen on validation: the grid search behind ``regions.*`` (ADR 27 adds the rule,
ADR 32 the dense system's own settings).

The evaluate stage tunes on the val split's gold-page fused heatmaps (never test); ``regionops
tune-regions`` on a folder's questions (the real train set). The chosen settings and the table
are recorded with the run.
"""

from __future__ import annotations

import numpy as np

from components.boxes import iou
from components.config import DenseRegionParams, Params, RegionParams
from components.regions.extract import extract_regions, text_block_regions
from components.regions.snap import block_cell_masks


def tune_region_params(
    heatmaps: list[np.ndarray],
    gold_boxes: list[tuple[float, float, float, float]],
    base: RegionParams,
    iou_hit: float = 0.5,
    blocks: list[list] | None = None,
    text_scores: list[np.ndarray] | None = None,
) -> tuple[RegionParams, list[dict]]:
    """Pick threshold strategy/value, neighbour range, padding, score, snapping and the region
    rule by top-region hit@1 (IoU >= ``iou_hit``) on gold-page heatmaps, ties broken by mean IoU.

    ``blocks``: each heatmap's page layout blocks; without them only cell boxes are tried.
    ``text_scores``: each page's blocks' BM25+ for its question; with them (and blocks) every
    heatmap setting is also tried under ``rule: text_blocks``, where it decides only the pages on
    which no block prints a question term. Call it on the validation split only; record the
    returned table in the run.
    """
    if len(heatmaps) != len(gold_boxes) or not heatmaps:
        raise ValueError(
            f"need matching, non-empty heatmaps and boxes ({len(heatmaps)} vs {len(gold_boxes)})"
        )
    if blocks is not None and len(blocks) != len(heatmaps):
        raise ValueError(f"need one block list per heatmap ({len(blocks)} vs {len(heatmaps)})")
    page_blocks = blocks or [None] * len(heatmaps)
    masks = [block_cell_masks(b, h.shape[0]) if b else None for b, h in zip(page_blocks, heatmaps)]
    grid = base.search  # params.yaml regions.search
    snaps = (
        tuple(grid.snap)
        if blocks is not None
        else tuple(s for s in grid.snap if s == "none") or ("none",)
    )
    # rule text_blocks: the best-BM25+ block where some block prints a question term (fixed across
    # the grid), else the heatmap setting's own top region.
    text_iou: list[float | None] = [None] * len(heatmaps)
    if text_scores is not None and blocks is not None:
        if len(text_scores) != len(heatmaps):
            raise ValueError(
                f"need one text score array per heatmap ({len(text_scores)} vs {len(heatmaps)})"
            )
        for i, (heatmap, gold, b, m, t) in enumerate(
            zip(heatmaps, gold_boxes, page_blocks, masks, text_scores)
        ):
            if b and t is not None and len(t) and float(np.max(t)) > 0:
                found = text_block_regions(heatmap, base, "", b, m, np.asarray(t))
                text_iou[i] = iou(found[0].box, gold) if found else 0.0
    with_text = any(v is not None for v in text_iou)
    rules = tuple(r for r in grid.rule if with_text or r == "heatmap") or (base.rule,)
    table = []
    strategies = {"absolute": grid.absolute, "relative": grid.relative, "quantile": grid.quantile}
    for strategy, values in strategies.items():
        for value in values:
            for rng in grid.neighbour_range:
                for padding in grid.padding:
                    for score in grid.score:
                        for snap in snaps:
                            cand = base.model_copy(
                                update={"threshold": strategy, "threshold_value": value,
                                        "neighbour_range": rng, "padding": padding, "score": score,
                                        "snap": snap}
                            )  # fmt: skip
                            ious = []
                            for heatmap, gold, b, m in zip(
                                heatmaps, gold_boxes, page_blocks, masks
                            ):
                                regions = extract_regions(heatmap, cand, blocks=b, block_masks=m)
                                ious.append(iou(regions[0].box, gold) if regions else 0.0)
                            for rule in rules:
                                rule_ious = (
                                    ious
                                    if rule == "heatmap"
                                    else [v if t is None else t for v, t in zip(ious, text_iou)]
                                )
                                hit = float(np.mean([v >= iou_hit for v in rule_ious]))
                                table.append(
                                    {
                                        **cand.model_dump(),
                                        "rule": rule,
                                        "hit1": hit,
                                        "miou": float(np.mean(rule_ious)),
                                    }
                                )
    if not table:
        raise ValueError("regions.search holds no candidate setting: nothing to tune")
    best = best_row(table)
    chosen = base.model_copy(update={k: best[k] for k in base.model_dump()})
    return chosen, table


def best_row(table: list[dict]) -> dict:
    """The tuning table's chosen row: the best hit@1, ties broken by mean IoU, then by order."""
    return max(table, key=lambda row: (row["hit1"], row["miou"]))


def tune_dense_settings(
    params: Params,
    dense_maps: list[np.ndarray],
    gold_boxes: list[tuple[float, float, float, float]],
    blocks: list[list],
) -> tuple[DenseRegionParams, dict]:
    """``regionops_dense``'s own heatmap settings (ADR 32) and their table row, tuned on gold-page
    maps without term evidence (the maps it serves). Its regions are ranked by their best cell
    (score max), as its pages are, so the rule and score are not searched."""
    search = params.regions.search.model_copy(
        update={"score": ["max"], "rule": ["heatmap"], "lexical_weight": []}
    )
    base = params.regions.model_copy(
        update={"rule": "heatmap", "score": "max", "lexical_weight": 0.0, "dense": None,
                "search": search}
    )  # fmt: skip
    chosen, rows = tune_region_params(
        dense_maps, gold_boxes, base, params.evaluate.iou_hit, blocks=blocks
    )
    dense = DenseRegionParams(**{k: getattr(chosen, k) for k in DenseRegionParams.model_fields})
    return dense, best_row(rows)
