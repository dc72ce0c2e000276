"""Print a page's gold rows (pdfminer) and units, to see where gold cuts a block.

Usage: PYTHONPATH=. python scripts/experiments/gold_rows.py PDF PAGE [Y0 Y1]  (Y: normalised band)
"""

from __future__ import annotations

import sys

from components.data.gold_units import page_units

pdf, page = sys.argv[1], int(sys.argv[2])
lo, hi = (float(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) > 4 else (0.0, 1.0)
pu = page_units(pdf, [page])[0]
inband = lambda r: lo * pu.height <= r[1] <= hi * pu.height
for r in pu.rows:
    if inband(r.rect):
        print(
            f"ROW {[round(v, 1) for v in r.rect]} size={r.size:.1f} lead={r.lead!r} bold={r.bold}"
            f" desc_x={r.desc_x} | {r.text[:90]}"
        )
for k, u in enumerate(pu.units):
    if inband(u.rect):
        print(f"UNIT {k} {u.kind} rows={len(u.rows)} term={u.term!r} | {u.text[:100]}")
