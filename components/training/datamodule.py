"""Questions -> training batches for the retriever: queries, their candidate pages, local positives.

A batch holds B questions and the unique pages they need (gold pages, then hard negatives), so a
page shared by two questions appears once and is never a false negative for either.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from components.config import Params
from components.data.corpus import Corpus
from components.model.featurize import PageFeatures, collate_pages
from components.model.retriever import RegionRetriever
from components.regions.grid import box_to_cells
from components.training.fused_val import FusedValidation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    question_id: str
    text: str
    page_id: str
    box_cells: np.ndarray | None  # bool [G*G] of the labelled box; None = unlabelled for training
    hard_negatives: tuple[str, ...]


def build_samples(
    corpus: Corpus, split: str, grid: int, use_hard_negatives: bool
) -> tuple[list[Sample], dict[str, int]]:
    """Usable samples of ``split`` plus counts of the questions that cannot train and why."""
    skipped = {"no_gold_page": 0, "gold_page_not_in_corpus": 0, "image_query": 0}
    samples = []
    # Hard negatives must come from the same split: test pages never leak into training.
    same_split = {p.id for p in corpus.pages if p.split == split}
    for q in corpus.questions_in(split):
        pid = q.page_id
        if q.query_image:
            # "this ship" names nothing: the text alone cannot find the page (two-stage retrieval's job).
            skipped["image_query"] += 1
            continue
        if pid is None:
            skipped["no_gold_page"] += 1
            continue
        if not corpus.has_page(pid):
            skipped["gold_page_not_in_corpus"] += 1
            continue
        box = q.training_box
        cells = box_to_cells(box, grid).reshape(-1) if box is not None else None
        negs = (
            tuple(n for n in q.hard_negatives if n != pid and n in same_split)
            if use_hard_negatives
            else ()
        )
        samples.append(Sample(q.id, q.question, pid, cells, negs))
    if any(skipped.values()):
        log.warning(
            "%s questions of split %s cannot train: %s", sum(skipped.values()), split, skipped
        )
    return samples, skipped


class PageFeatureCache:
    """Featurize each page once (the image decode + resize dominates otherwise)."""

    def __init__(self, model: RegionRetriever, corpus: Corpus):
        self.featurizer, self.corpus = model.featurizer, corpus
        self._cache: dict[str, PageFeatures] = {}

    def __call__(self, page_id: str) -> PageFeatures:
        if page_id not in self._cache:
            page = self.corpus.page(page_id)
            self._cache[page_id] = self.featurizer(page, self.corpus.load_image(page))
        return self._cache[page_id]


class _SampleDataset(Dataset):
    def __init__(self, samples: list[Sample]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


class SplitLexical:
    """The lexical channel over one split's pages (BM25 idf of that split), for fusion-aware
    training: each query's lexical heatmap on each of its batch's pages (``train.fusion_aware``)."""

    def __init__(self, params: Params, corpus: Corpus, split: str):
        from components.index.lexical import LexicalChannel
        from components.index.pages import PageMeta

        pages = [p for p in corpus.pages if p.split == split]
        self.position = {p.id: i for i, p in enumerate(pages)}
        metas = [PageMeta.from_page(p) for p in pages]  # words and blocks as indexed
        self.channel = LexicalChannel.from_metas(metas, params.model.grid)
        self.scope = params.rag.lexical_scope

    def heatmaps(self, texts: list[str], page_ids: list[str]) -> torch.Tensor:
        """float32 [B, P, G*G]: the served lexical heatmap of each text on each page."""
        positions = np.array([self.position[pid] for pid in page_ids])
        maps = [
            self.channel.heatmaps(t, positions, self.scope).reshape(len(page_ids), -1)
            for t in texts
        ]
        return torch.from_numpy(np.stack(maps).astype(np.float32))


class RetrievalCollate:
    def __init__(
        self,
        model: RegionRetriever,
        features: PageFeatureCache,
        hard_negatives_per_query: int,
        lexical: SplitLexical | None = None,
    ):
        self.model, self.features, self.n_hard = model, features, hard_negatives_per_query
        self.lexical = lexical

    def __call__(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        page_ids: list[str] = []
        index: dict[str, int] = {}
        wanted = [s.page_id for s in samples]
        for s in samples:
            wanted += random.sample(s.hard_negatives, min(self.n_hard, len(s.hard_negatives)))
        for pid in wanted:  # gold pages first, then hard negatives; each page once
            if pid not in index:
                index[pid] = len(page_ids)
                page_ids.append(pid)
        n_cells = self.model.grid * self.model.grid
        box_cells = torch.zeros(len(samples), n_cells, dtype=torch.bool)
        has_box = torch.zeros(len(samples), dtype=torch.bool)
        for i, s in enumerate(samples):
            if s.box_cells is not None:
                box_cells[i] = torch.from_numpy(s.box_cells)
                has_box[i] = True
        queries = self.model.tokenize_queries([s.text for s in samples])
        pages = collate_pages([self.features(pid) for pid in page_ids])
        if self.lexical is not None:
            pages["lexical_cells"] = self.lexical.heatmaps([s.text for s in samples], page_ids)
        return {
            **queries,
            **pages,
            "targets": torch.tensor([index[s.page_id] for s in samples], dtype=torch.long),
            "box_cells": box_cells,
            "has_box": has_box,
            "page_ids": page_ids,
        }


class RetrievalDataModule(L.LightningDataModule):
    def __init__(
        self,
        params: Params,
        corpus: Corpus,
        model: RegionRetriever,
        hard_negatives_per_query: int = 1,
    ):
        super().__init__()
        self.params, self.corpus, self.model = params, corpus, model
        grid, hard = params.model.grid, params.train.hard_negatives
        self.train_samples, self.skipped_train = build_samples(corpus, "train", grid, hard)
        self.val_samples, self.skipped_val = build_samples(corpus, "val", grid, False)
        if len(self.train_samples) < 2:
            raise ValueError(
                f"{len(self.train_samples)} usable train questions in {corpus.root}: in-batch contrastive training needs at least 2 "
                f"(skipped: {self.skipped_train})"
            )
        features = PageFeatureCache(model, corpus)
        fusion = params.train.fusion_aware
        self.train_collate = RetrievalCollate(
            model,
            features,
            hard_negatives_per_query if hard else 0,
            SplitLexical(params, corpus, "train") if fusion else None,
        )
        self.val_collate = RetrievalCollate(
            model,
            features,
            0,
            SplitLexical(params, corpus, "val") if fusion and self.val_samples else None,
        )
        # What the export selects on: the served fusion of dense and lexical over the val pages.
        self.fused_val = (
            FusedValidation(params, corpus, self.val_samples) if self.val_samples else None
        )

    def counts(self) -> dict[str, int]:
        return {
            "train_questions": len(self.train_samples),
            "train_labelled": sum(s.box_cells is not None for s in self.train_samples),
            "val_questions": len(self.val_samples),
            **{f"train_skipped_{k}": v for k, v in self.skipped_train.items()},
        }

    def train_dataloader(self) -> DataLoader:
        t = self.params.train
        return DataLoader(
            _SampleDataset(self.train_samples),
            batch_size=t.batch_size,
            shuffle=True,
            # Full batches only (when there is more than one): in-batch negatives need company.
            drop_last=len(self.train_samples) > t.batch_size,
            collate_fn=self.train_collate,
            num_workers=t.num_workers,
            persistent_workers=t.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_samples:
            return []
        t = self.params.train
        return DataLoader(
            _SampleDataset(self.val_samples),
            batch_size=t.batch_size,
            shuffle=False,
            collate_fn=self.val_collate,
            num_workers=t.num_workers,
            persistent_workers=t.num_workers > 0,
        )
