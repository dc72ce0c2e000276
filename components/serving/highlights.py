"""Highlight crops for the served checkpoint: the page images it bundles, and crops of answered regions.

At registration the indexed pages' images are copied into the bundle (``stage_page_images``),
named by a hash of the page id so that no page id ever becomes a path. At serving time
``PageCrops`` cuts each returned box out of its page, with a small margin, downscaled to
``max_side`` pixels, as a base64 PNG.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

MANIFEST = "manifest.json"
MARGIN = 0.01  # of the page size around each box, so the crop shows the box's edges


def _file_name(page_id: str, suffix: str) -> str:
    return hashlib.sha256(page_id.encode()).hexdigest()[:24] + suffix.lower()


def stage_page_images(images: Iterable[tuple[str, Path]], dest: Path) -> int:
    """Copy ``(page_id, image path)`` pairs into ``dest`` with a manifest; returns the pages copied."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for page_id, path in images:
        name = _file_name(page_id, Path(path).suffix or ".png")
        shutil.copyfile(path, dest / name)
        manifest[page_id] = name
    (dest / MANIFEST).write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
    return len(manifest)


class PageCrops:
    """Crops of normalised boxes from the bundled page images."""

    def __init__(self, folder: Path, max_side: int):
        self.folder, self.max_side = Path(folder), int(max_side)
        self.manifest: dict[str, str] = json.loads(
            (self.folder / MANIFEST).read_text(encoding="utf-8")
        )

    def __contains__(self, page_id: str) -> bool:
        return page_id in self.manifest

    def crops(self, page_id: str | None, boxes: list[list[float]]) -> list[str]:
        """One base64 PNG per box (an empty list when the page has no bundled image)."""
        if not page_id or page_id not in self.manifest:
            return []
        from PIL import Image

        # The manifest is ours, but keep the file inside the folder all the same.
        path = (self.folder / Path(self.manifest[page_id]).name).resolve()
        out = []
        with Image.open(path) as page:
            page = page.convert("RGB")
            width, height = page.size
            for x0, y0, x1, y1 in boxes:
                left = max(0, int((x0 - MARGIN) * width))
                top = max(0, int((y0 - MARGIN) * height))
                right = min(width, max(left + 1, round((x1 + MARGIN) * width)))
                bottom = min(height, max(top + 1, round((y1 + MARGIN) * height)))
                crop = page.crop((left, top, right, bottom))
                crop.thumbnail((self.max_side, self.max_side))
                buffer = io.BytesIO()
                crop.save(buffer, format="PNG", optimize=True)
                out.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
        return out
