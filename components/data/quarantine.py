"""Rejected records with their reasons: collected during import/validation, written as JSONL.

Each quarantined record keeps a short ``reason`` (a stable category, used for counts and for the
"top reasons" of a report) and a ``detail`` (the specific message), plus where it came from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.data.corpus import write_jsonl_atomic


@dataclass
class Quarantine:
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, reason: str, detail: str = "", **where: Any) -> None:
        """Quarantine one record of ``table`` (``pages``, ``questions``, ``documents``...)."""
        entry = {"reason": reason, "detail": detail or reason}
        entry.update({k: v for k, v in where.items() if v is not None})
        self.records.setdefault(table, []).append(entry)

    def count(self, table: str | None = None) -> int:
        if table is not None:
            return len(self.records.get(table, []))
        return sum(len(v) for v in self.records.values())

    def reasons(self, table: str | None = None) -> Counter:
        tables = [table] if table else list(self.records)
        return Counter(r["reason"] for t in tables for r in self.records.get(t, []))

    def top_reasons(self, n: int = 5) -> list[dict[str, Any]]:
        return [
            {"reason": reason, "count": count} for reason, count in self.reasons().most_common(n)
        ]

    def write(self, folder: Path) -> dict[str, str]:
        """Write ``folder/<table>.jsonl`` for every table (empty tables included, so DVC outs are stable)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for table in sorted(self.records):
            path = folder / f"{table}.jsonl"
            write_jsonl_atomic(path, self.records[table])
            paths[table] = str(path)
        return paths

    def ensure(self, *tables: str) -> None:
        for table in tables:
            self.records.setdefault(table, [])
