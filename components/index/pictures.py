"""Training-free picture descriptors for stage 1 of two-stage retrieval (ADR 8).

At index build each page's pictures are found as ink components the text layer does not cover
(``scipy.ndimage.label``), and each is stored as a small colour thumbnail. An image query is
matched against them in two steps:

1. a hue histogram (saturation-weighted) shortlists pictures. Hue survives the brightness,
   contrast and saturation jitter a photo of the same thing shows (each is a blend with grey or
   a scaling, which keep a pixel's hue), and a histogram survives cropping;
2. normalised cross-correlation (per-channel standardised RGB) of the query against windows of
   each shortlisted thumbnail, over several window scales and positions, because a query is
   usually a crop of the picture, not the whole of it.

A picture is stored as ``{"box": [x0, y0, x1, y1] normalised, "thumb": base64 uint8 HxWx3,
"hist": [float, ...]}`` in ``PageMeta.pictures``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

THUMB_H, THUMB_W = 24, 40  # stored thumbnail size (2,880 bytes a picture, RGB)
HUE_BINS = 24
# Window heights, as a fraction of the picture, tried when correlating a query (a crop keeps
# most of the picture; 1.0 is the whole picture).
WINDOW_SCALES = (0.6, 0.7, 0.8, 0.9, 1.0)
MIN_SIDE = 0.04  # a picture is at least this fraction of the page's width and height
MAX_AREA = 0.6  # larger components are page backgrounds or frames, not pictures
MIN_FILL = 0.6  # component pixels / its box: pictures are solid, frames and rules are not
MIN_STD = 12.0  # a uniform patch (a bar, a shaded table row) has no picture content to match
INK_DELTA = 24  # a pixel is ink when a channel differs this much from the page background


@dataclass
class PictureMatch:
    page_id: str
    box: tuple[float, float, float, float]
    score: float  # normalised cross-correlation of the best window, in [-1, 1]


# ---------------------------------------------------------------------- descriptors
def _rgb(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {arr.shape}")
    return arr


def hue_histogram(rgb: np.ndarray) -> np.ndarray:
    """L2-normalised hue histogram, each pixel weighted by its saturation (grey pixels carry no hue)."""
    x = rgb.reshape(-1, 3).astype(np.float32) / 255.0
    mx, mn = x.max(1), x.min(1)
    chroma = mx - mn
    sat = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    safe = np.maximum(chroma, 1e-6)
    hue = (
        np.where(
            mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)
        )
        / 6
    )
    # Soft binning (linear split between the two nearest bins) so small hue shifts move little mass.
    pos = hue * HUE_BINS - 0.5
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    hist = np.zeros(HUE_BINS, dtype=np.float64)
    np.add.at(hist, lo % HUE_BINS, sat * (1 - frac))
    np.add.at(hist, (lo + 1) % HUE_BINS, sat * frac)
    norm = np.linalg.norm(hist)
    return (hist / norm if norm > 0 else hist).astype(np.float32)


def thumbnail(rgb: np.ndarray, size: tuple[int, int] = (THUMB_W, THUMB_H)) -> np.ndarray:
    """uint8 [H, W, 3] area-averaged thumbnail (PIL box filter: no aliasing from thin shapes)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BOX))


def encode_thumb(thumb: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(thumb, dtype=np.uint8).tobytes()).decode("ascii")


def decode_thumb(text: str) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    if raw.size != THUMB_H * THUMB_W * 3:
        raise ValueError(
            f"a stored picture thumbnail has {raw.size} bytes, expected {THUMB_H * THUMB_W * 3}"
        )
    return raw.reshape(THUMB_H, THUMB_W, 3)


# ---------------------------------------------------------------------- finding pictures
def find_picture_boxes(image, words: Sequence[Sequence] = ()) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1, exclusive ends) of the pictures on a page image.

    Ink is every pixel that differs from the page background (its median colour); the text
    layer's word boxes are erased first, so captions and labels never join a picture. Each
    4-connected ink component that is large, solid and not uniform is a picture.
    """
    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    background = np.median(
        rgb[::4, ::4].reshape(-1, 3), axis=0
    )  # a subsample is plenty for the mode-like page colour
    ink = np.abs(rgb.astype(np.int16) - background.astype(np.int16)).max(-1) > INK_DELTA
    for word in words:  # [text, x0, y0, x1, y1] normalised
        x0, y0 = int(np.floor(float(word[1]) * w)) - 1, int(np.floor(float(word[2]) * h)) - 1
        x1, y1 = int(np.ceil(float(word[3]) * w)) + 1, int(np.ceil(float(word[4]) * h)) + 1
        ink[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = False
    labels, n = ndimage.label(ink)
    if n == 0:
        return []
    sizes = ndimage.sum_labels(ink, labels, index=np.arange(1, n + 1))
    boxes = []
    for i, sl in enumerate(ndimage.find_objects(labels)):
        if sl is None:
            continue
        bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if bw < MIN_SIDE * w or bh < MIN_SIDE * h or bw * bh > MAX_AREA * w * h:
            continue
        if sizes[i] < MIN_FILL * bw * bh:
            continue
        if rgb[sl].reshape(-1, 3).std(0).max() < MIN_STD:
            continue
        boxes.append((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
    return boxes


def page_pictures(image, words: Sequence[Sequence] = ()) -> list[dict]:
    """The descriptors stored in ``PageMeta.pictures`` for one page image."""
    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    out = []
    for x0, y0, x1, y1 in find_picture_boxes(rgb, words):
        crop = rgb[y0:y1, x0:x1]
        out.append(
            {
                "box": [round(x0 / w, 5), round(y0 / h, 5), round(x1 / w, 5), round(y1 / h, 5)],
                "aspect": round((x1 - x0) / (y1 - y0), 4),
                "thumb": encode_thumb(thumbnail(crop)),
                "hist": [round(float(v), 5) for v in hue_histogram(crop)],
            }
        )
    return out


# ---------------------------------------------------------------------- matching
def _standardise(x: np.ndarray, axes) -> np.ndarray:
    x = x - x.mean(axis=axes, keepdims=True)
    return x / np.maximum(x.std(axis=axes, keepdims=True), 1e-3)


def _box_sums(a: np.ndarray, wh: int, ww: int) -> np.ndarray:
    """Sums of ``a`` [H, W, C] over every wh x ww window, [H-wh+1, W-ww+1, C] (integral image)."""
    c = np.pad(a, ((1, 0), (1, 0), (0, 0))).cumsum(0).cumsum(1)
    return c[wh:, ww:] - c[:-wh, ww:] - c[wh:, :-ww] + c[:-wh, :-ww]


def correlate(
    query_rgb: np.ndarray, thumb: np.ndarray, picture_aspect: float, query_cache: dict | None = None
) -> float:
    """Best normalised cross-correlation of the query against windows of a picture thumbnail.

    A window keeps the query's aspect ratio in picture pixels; its height is each of
    ``WINDOW_SCALES`` of the picture's. The query is resized to the window, both are standardised
    per colour channel (undoing brightness and contrast changes), and the score is the mean
    product: 1 for a perfect match, about 0 for unrelated content. ``query_cache`` keeps the
    resized, standardised query per window size across the pictures of one search.
    """
    query_cache = {} if query_cache is None else query_cache
    qh, qw = query_rgb.shape[:2]
    query_aspect = qw / max(qh, 1)
    thumb = thumb.astype(
        np.float64
    )  # float64: the integral image of squares must not lose precision
    best = -1.0
    for scale in WINDOW_SCALES:
        wh = max(4, round(scale * THUMB_H))
        # width in thumbnail pixels: query aspect in picture pixels, mapped through the thumb's squeeze
        ww = round(wh * query_aspect / picture_aspect * THUMB_W / THUMB_H)
        if ww < 4 or ww > THUMB_W:
            continue
        q = query_cache.get((ww, wh))
        if q is None:
            q = query_cache[(ww, wh)] = _standardise(
                thumbnail(query_rgb, (ww, wh)).astype(np.float32), (0, 1)
            )
        windows = np.lib.stride_tricks.sliding_window_view(thumb, (wh, ww), axis=(0, 1))
        # q is zero-mean, so <q, w - mean(w)> = <q, w>: only each window's std is needed, from box sums.
        dot = np.einsum("yxcij,ijc->yxc", windows, q)
        n = wh * ww
        mean = _box_sums(thumb, wh, ww) / n
        var = np.maximum(_box_sums(thumb * thumb, wh, ww) / n - mean * mean, 0.0)
        score = (dot / (n * np.maximum(np.sqrt(var), 1e-3))).mean(-1)
        best = max(best, float(score.max()))
    return best


class PictureIndex:
    """Every stored picture of an index, searchable by an image query."""

    def __init__(self, metas):
        self.refs: list[tuple[str, tuple[float, float, float, float], float, str]] = []
        hists = []
        for m in metas:
            for pic in getattr(m, "pictures", None) or []:
                self.refs.append((m.page_id, tuple(pic["box"]), float(pic["aspect"]), pic["thumb"]))
                hists.append(pic["hist"])
        self.hists = np.asarray(hists, dtype=np.float32).reshape(len(hists), HUE_BINS)

    def __len__(self) -> int:
        return len(self.refs)

    def search(self, image, k: int = 5, shortlist: int = 64) -> list[PictureMatch]:
        """Top ``k`` pictures for a query image: hue-histogram shortlist, then correlation."""
        if not self.refs:
            return []
        rgb = _rgb(image)
        cand = np.argsort(-(self.hists @ hue_histogram(rgb)), kind="stable")[:shortlist]
        matches, cache = [], {}
        for i in cand:
            page_id, box, aspect, thumb = self.refs[i]
            matches.append(
                PictureMatch(page_id, box, correlate(rgb, decode_thumb(thumb), aspect, cache))
            )
        matches.sort(key=lambda m: -m.score)
        return matches[:k]
