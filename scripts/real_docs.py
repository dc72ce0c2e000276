#!/usr/bin/env python
"""Build the real-PDF benchmark: fetch the Debian doc packages, lay out dev/ and train/.

    python scripts/real_docs.py --out .regionops/realdocs

Downloads only the packages of ``realdocs.dev_packages`` / ``train_packages`` in params.yaml
(each must be in ``components.data.realdocs.ALLOWED_PACKAGES``) with ``apt-get download`` (one
``apt-get update`` first, only when a .deb is missing), unpacks them with ``dpkg -x``, collects
their PDFs (``*.pdf`` and ``*.pdf.gz``) and writes, per set, ``docs/``, ``questions.jsonl``,
``manifest.json`` and ``summary.json`` (see components/data/realdocs.py). Idempotent: present
.debs, unpacked trees and matching subset PDFs are kept. ``--preview N`` draws the gold boxes of
N seeded pages per set into ``<set>/preview/`` for a person to check. ``--set
realdocs.dev_page_budget=720`` builds the larger judge (229 of its 720 pages are the default
set's; ADR 34) into another ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# this checkout's components, not an installed copy's
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.config import load_params
from components.data.realdocs import (
    ALLOWED_PACKAGES,
    SourcePdf,
    build_set,
    plan_set,
    sha256_file,
)


def fetch(packages: list[str], out: Path) -> dict[str, Path]:
    """The .deb of each package in ``out/debs`` (downloaded when missing)."""
    debs = out / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        if shutil.which("apt-get") is None:
            sys.exit(f"apt-get not found: cannot download {missing}")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    found = {}
    for p in packages:
        matches = sorted(debs.glob(f"{p}_*.deb"))
        if not matches:
            sys.exit(f"{p}: apt-get download gave no .deb")
        found[p] = matches[-1]
    return found


def unpack(package: str, deb: Path, out: Path) -> Path:
    target = out / "extract" / package
    if not target.is_dir():  # unpacked beside, then renamed: an interrupted unpack is not reused
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{package}-"))
        subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True)
        tmp.rename(target)
    return target


def sources_of(package: str, deb: Path, out: Path) -> list[SourcePdf]:
    """The distinct PDFs a package ships (gzipped ones unpacked into ``out/pdfs``)."""
    version = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    deb_sha = sha256_file(deb)
    tree = unpack(package, deb, out)
    seen, result = set(), []
    files = sorted(
        p
        for p in tree.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and (p.name.endswith(".pdf") or p.name.endswith(".pdf.gz"))
    )
    for f in files:
        rel = f.relative_to(tree).as_posix()
        path = f
        if f.name.endswith(".gz"):
            path = out / "pdfs" / package / rel.removesuffix(".gz")
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                with gzip.open(f, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                tmp.replace(path)
        digest = sha256_file(path)
        if digest in seen:
            continue
        seen.add(digest)
        result.append(SourcePdf(package, version, deb_sha, path, rel))
    return result


def preview(set_dir: Path, n: int, seed: int) -> None:
    """Pages of the set with their questions' gold boxes (colour per kind) for eyeballing."""
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    colours = {"cloze": "blue", "definition": "green", "caption": "red", "heading": "orange"}
    questions = [
        json.loads(line) for line in (set_dir / "questions.jsonl").read_text().splitlines()
    ]
    pages = sorted({(q["doc"], q["page"]) for q in questions})
    out = set_dir / "preview"
    out.mkdir(exist_ok=True)
    for doc, page in random.Random(seed).sample(pages, min(n, len(pages))):
        pdf = pdfium.PdfDocument(str(set_dir / "docs" / doc))
        img = pdf[page].render(scale=1.3).to_pil().convert("RGB")
        pdf.close()
        draw = ImageDraw.Draw(img)
        w, h = img.size
        for q in questions:
            if q["doc"] == doc and q["page"] == page:
                x0, y0, x1, y1 = q["box"]
                draw.rectangle(
                    [x0 * w, y0 * h, x1 * w, y1 * h], outline=colours[q["type"]], width=2
                )
                draw.text(
                    (x0 * w, max(0, y0 * h - 11)),
                    f"{q['type']}: {q['answers'][0]}"[:60],
                    fill=colours[q["type"]],
                )
        name = hashlib.sha1(f"{doc}#{page}".encode()).hexdigest()[:8]
        img.save(out / f"{doc.replace('/', '__')}-p{page}-{name}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".regionops/realdocs"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--sets", default="dev,train", help="comma-separated: dev, train")
    ap.add_argument("--preview", type=int, default=0, help="pages per set drawn with gold boxes")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter, e.g. realdocs.dev_page_budget=720 (the larger judge, ADR 34)",
    )
    args = ap.parse_args()
    params = load_params(args.params, overrides=args.set)
    cfg, seed = params.realdocs, params.seed
    sets = {
        "dev": (cfg.dev_packages, cfg.dev_page_budget),
        "train": (cfg.train_packages, cfg.train_page_budget),
    }
    wanted = [s for s in args.sets.split(",") if s]
    unknown = [s for s in wanted if s not in sets]
    if unknown:
        sys.exit(f"--sets: unknown {unknown}; use dev and/or train")
    packages = [p for s in wanted for p in sets[s][0]]
    refused = sorted(set(packages) - ALLOWED_PACKAGES)
    if refused:
        sys.exit(f"realdocs packages {refused} are not allowed (only {sorted(ALLOWED_PACKAGES)})")
    args.out.mkdir(parents=True, exist_ok=True)
    debs = fetch(packages, args.out)
    sources = {p: sources_of(p, debs[p], args.out) for p in packages}
    summaries = {}
    for name in wanted:
        pkgs, budget = sets[name]
        picks, plan_skips = plan_set(sources, pkgs, budget, cfg, seed)
        summary = build_set(name, picks, args.out, cfg, seed, plan_skips, log=print)
        summary["pdfs_per_package"] = {p: len(sources[p]) for p in pkgs}
        (args.out / name / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        summaries[name] = summary
        if args.preview:
            preview(args.out / name, args.preview, seed)
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    print(json.dumps(summaries, indent=2))


if __name__ == "__main__":
    main()
