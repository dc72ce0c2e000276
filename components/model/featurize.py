"""Turn a (Page, PIL image) into the cell encoder's inputs: resized pixels, per-cell word-piece ids
and (``model.cell_text=contextual``) per-cell pooled contextual states of the frozen MiniLM.

Featurizing is pure and deterministic (the text encoder is frozen on this path), so datasets cache
its output per page for a whole training run, and a DataLoader collate can stack it
(``collate_pages``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from components.data.schema import Page


@dataclass(frozen=True)
class PageFeatures:
    pixels: torch.Tensor  # uint8 [3, S, S]; the model scales it (uint8 keeps caches 4x smaller)
    cell_tokens: torch.Tensor  # int64 [G*G, T]; 0 = padding; row-major cells, rows = y
    # float32 [G*G, E]: masked mean of the contextual MiniLM states of the word pieces whose word
    # centre falls in the cell (zeros for an empty cell); None when cell_text = wordpiece
    cell_text: torch.Tensor | None = None


def image_to_pixels(image: Image.Image, image_size: int) -> torch.Tensor:
    """RGB image -> uint8 [3, S, S] (aspect ratio is not kept: cells are a fixed G×G grid of the page)."""
    resized = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    return (
        torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
    )


def word_cells(page: Page, grid: int) -> list[int]:
    """Row-major cell index of each word of the text layer: the cell holding the word box's centre."""
    out = []
    for word in page.words:
        x0, y0, x1, y1 = word.box
        col = min(grid - 1, int((x0 + x1) / 2 * grid))
        row = min(grid - 1, int((y0 + y1) / 2 * grid))
        out.append(row * grid + col)
    return out


class PageFeaturizer:
    def __init__(
        self,
        tokenizer,
        grid: int,
        image_size: int,
        max_tokens_per_cell: int,
        text_model: torch.nn.Module | None = None,
        chunk_tokens: int = 256,
        block_context: float = 0.0,
        heading_context: float = 0.0,
        context_unit: str = "page",
    ):
        self.tokenizer = tokenizer
        self.grid = grid
        self.image_size = image_size
        self.max_tokens = max_tokens_per_cell
        self.text_model = (
            text_model  # frozen MiniLM for contextual cell text; None = word pieces only
        )
        self.chunk_tokens = chunk_tokens
        self.block_context = block_context
        self.heading_context = heading_context
        self.context_unit = (
            context_unit  # page: chunks of the page's reading order | block: each block alone
        )
        self.group_chunks = 8  # chunks per MiniLM pass when featurizing a batch of pages

    def cell_tokens(self, page: Page) -> torch.Tensor:
        """Word pieces of the text layer, bucketed by the cell holding each word box's centre (reading order)."""
        grid, cap = self.grid, self.max_tokens
        out = torch.zeros(grid * grid, cap, dtype=torch.long)
        if not page.words:
            return out
        pieces = self.tokenizer([w.text for w in page.words], add_special_tokens=False)["input_ids"]
        fill = np.zeros(grid * grid, dtype=np.int64)
        for cell, ids in zip(word_cells(page, grid), pieces):
            for token in ids:
                if fill[cell] >= cap:
                    break  # the cell is full: later words in it are truncated (max_tokens_per_cell)
                out[cell, fill[cell]] = token
                fill[cell] += 1
        return out

    def cell_text(self, page: Page) -> torch.Tensor:
        """float32 [G*G, E]: the page's text layer read by MiniLM in reading order, pooled per cell."""
        return self.cell_text_many([page])[0]

    @torch.no_grad()
    def cell_text_many(self, pages: list[Page]) -> list[torch.Tensor]:
        """``cell_text`` of several pages from one padded MiniLM batch (one float32 [G*G, E] each).

        Each page's word pieces are cut into chunks of at most ``chunk_tokens`` (each wrapped in
        [CLS] ... [SEP]); the chunks of all pages run as one padded batch, so the encoder does a
        few large matrix products instead of many small ones. Attention is masked per chunk, so a
        page's states do not depend on which pages share its batch.
        """
        model = self.text_model
        if model is None:
            raise RuntimeError(
                "contextual cell text needs the text encoder (PageFeaturizer.text_model)"
            )
        if model.training:
            raise RuntimeError(
                "the text encoder must be in eval mode for cached contextual features"
            )
        n_cells, width = self.grid * self.grid, model.config.hidden_size
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        plans, all_chunks = [], []
        for page in pages:
            pieces = (
                self.tokenizer([w.text for w in page.words], add_special_tokens=False)["input_ids"]
                if page.words
                else []
            )
            ids = [t for word in pieces for t in word]
            cells = [c for c, word in zip(word_cells(page, self.grid), pieces) for _ in word]
            # Reading order, or (context_unit=block) each layout block's pieces read on their own.
            order = (
                self._piece_order(page, pieces)
                if self.context_unit == "block"
                else [list(range(len(ids)))]
            )
            chunks, perm = [], []
            for run in order:
                if not run:
                    continue
                # Equal chunks of at most chunk_tokens - 2 pieces: the same passes, with the least padding.
                n_chunks = math.ceil(len(run) / (self.chunk_tokens - 2))
                size = math.ceil(len(run) / n_chunks)
                chunks += [[ids[k] for k in run[i : i + size]] for i in range(0, len(run), size)]
                perm += run
            plans.append((pieces, cells, len(all_chunks), len(chunks), perm))
            all_chunks.extend(chunks)
        hidden: list[torch.Tensor | None] = [None] * len(all_chunks)
        device = next(model.parameters()).device
        # Chunks sorted by length and run in groups padded to their own longest, so a short
        # chunk never pays for a long one's padding.
        order = sorted(range(len(all_chunks)), key=lambda i: len(all_chunks[i]))
        for g in range(0, len(order), self.group_chunks):
            group = order[g : g + self.group_chunks]
            length = len(all_chunks[group[-1]]) + 2
            input_ids = torch.zeros(
                len(group), length, dtype=torch.long
            )  # 0 = [PAD] in MiniLM's vocab
            mask = torch.zeros(len(group), length, dtype=torch.long)
            for row, i in enumerate(group):
                chunk = all_chunks[i]
                input_ids[row, : len(chunk) + 2] = torch.tensor([cls, *chunk, sep])
                mask[row, : len(chunk) + 2] = 1
            states = model(
                input_ids=input_ids.to(device), attention_mask=mask.to(device)
            ).last_hidden_state
            for row, i in enumerate(group):
                hidden[i] = states[row].float().cpu()
        outs = []
        for page, (pieces, cells, first, n_chunks, perm) in zip(pages, plans):
            out = torch.zeros(n_cells, width)
            if not n_chunks:
                outs.append(out)
                continue
            # The states of the real pieces (drop [CLS], [SEP] and padding), back in reading order.
            mine = all_chunks[first : first + n_chunks]
            read = torch.cat(
                [hidden[first + i][1 : len(chunk) + 1] for i, chunk in enumerate(mine)]
            )
            flat = torch.empty_like(read)
            flat[torch.tensor(perm, dtype=torch.long)] = read
            index = torch.tensor(cells, dtype=torch.long)
            out.index_add_(0, index, flat)
            count = torch.bincount(index, minlength=n_cells).unsqueeze(-1)
            out = out / count.clamp_min(1)
            if self.block_context > 0 and page.blocks:
                out = self._mix_blocks(page, out, count.squeeze(-1) > 0, flat, pieces)
            if self.heading_context > 0:
                out = self._mix_heading(page, out, flat, pieces)
            outs.append(out)
        return outs

    @staticmethod
    def _piece_order(page: Page, pieces: list[list[int]]) -> list[list[int]]:
        """Piece indices grouped into runs: one per layout block (the first block holding the word's
        centre), in reading order within it, then the pieces of words outside every block. So MiniLM
        reads a block as ``dense_blocks`` embeds it, without its neighbours' context (ADR 23)."""
        runs: dict[int, list[int]] = {}
        k = 0
        for word, word_pieces in zip(page.words, pieces):
            x, y = (word.box[0] + word.box[2]) / 2, (word.box[1] + word.box[3]) / 2
            owner = next(
                (
                    b
                    for b, block in enumerate(page.blocks)
                    if block.box[0] <= x <= block.box[2] and block.box[1] <= y <= block.box[3]
                ),
                -1,
            )
            runs.setdefault(owner, []).extend(range(k, k + len(word_pieces)))
            k += len(word_pieces)
        return [runs[b] for b in sorted(runs, key=lambda b: (b < 0, b))]

    def _mix_blocks(self, page: Page, own: torch.Tensor, has_words: torch.Tensor,
                    flat: torch.Tensor, pieces: list[list[int]]) -> torch.Tensor:  # fmt: skip
        """Blend each cell's feature with the pooled states of the layout block covering it.

        Every cell of a block (empty gaps included) then carries the block's meaning, so a heatmap
        lights up whole blocks rather than the one cell holding the query's word.
        """
        from components.regions.grid import box_to_cells

        w = self.block_context
        # Which block holds each word piece (by its word's centre), as one [blocks, pieces] mask.
        centres = torch.tensor(
            [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in (wd.box for wd in page.words)],
            dtype=torch.float64,
        )  # float64: the same edge decisions as Python floats
        boxes = torch.tensor([list(block.box) for block in page.blocks], dtype=torch.float64)
        inside = (
            (boxes[:, None, 0] <= centres[None, :, 0])
            & (centres[None, :, 0] <= boxes[:, None, 2])
            & (boxes[:, None, 1] <= centres[None, :, 1])
            & (centres[None, :, 1] <= boxes[:, None, 3])
        )
        owner = torch.tensor([k for k, word in enumerate(pieces) for _ in word], dtype=torch.long)
        piece_in = inside[:, owner].to(flat.dtype)  # [B, P]
        n_in = piece_in.sum(1, keepdim=True)
        used = n_in.squeeze(1) > 0  # blocks without any word piece add nothing
        block_mean = (piece_in @ flat) / n_in.clamp_min(1)  # [B, E]
        covers = (
            torch.stack(
                [
                    torch.from_numpy(box_to_cells(block.box, self.grid).reshape(-1))
                    for block in page.blocks
                ]
            ).to(flat.dtype)
            * used[:, None]
        )  # [B, G*G]
        block_sum = covers.T @ block_mean
        block_n = covers.sum(0).unsqueeze(-1)
        in_block = block_n.squeeze(-1) > 0
        block = block_sum / block_n.clamp_min(1)
        mixed = torch.where(has_words[:, None], (1 - w) * own + w * block, block)
        return torch.where(in_block[:, None], mixed, own)

    def _mix_heading(self, page: Page, cells: torch.Tensor, flat: torch.Tensor,
                     pieces: list[list[int]]) -> torch.Tensor:  # fmt: skip
        """Blend the pooled states of the page's heading into every cell that holds text.

        What tells a page from its near-duplicates (company, year) sits in its heading, while a
        question's evidence sits elsewhere on the page. With the heading in every text cell, the
        evidence cell carries both, and a page-constant part of the scores is one the local
        (within-page) softmax cannot push down (ADR 19).
        """
        from components.data.layout import heading_block, words_in

        heading = heading_block(page)
        if heading is None:
            return cells
        in_heading = words_in(heading.box, page.words)
        rows = torch.tensor(
            [k for k, word in enumerate(pieces) for _ in word if in_heading[k]], dtype=torch.long
        )
        if not len(rows):
            return cells
        state = flat[rows].mean(0)
        w = self.heading_context
        has_text = cells.ne(0).any(-1, keepdim=True)
        return torch.where(has_text, (1 - w) * cells + w * state, cells)

    def __call__(self, page: Page, image: Image.Image) -> PageFeatures:
        return self.many([page], [image])[0]

    def many(self, pages: list[Page], images: list[Image.Image]) -> list[PageFeatures]:
        """Features of several pages; the contextual text of all of them runs as one MiniLM batch."""
        texts = self.cell_text_many(pages) if self.text_model is not None else [None] * len(pages)
        return [
            PageFeatures(
                pixels=image_to_pixels(image, self.image_size),
                cell_tokens=self.cell_tokens(page),
                cell_text=text,
            )
            for page, image, text in zip(pages, images, texts)
        ]


def collate_pages(features: list[PageFeatures]) -> dict[str, torch.Tensor]:
    batch = {
        "pixels": torch.stack([f.pixels for f in features]),
        "cell_tokens": torch.stack([f.cell_tokens for f in features]),
    }
    if features and features[0].cell_text is not None:
        batch["cell_text"] = torch.stack([f.cell_text for f in features])
    return batch
