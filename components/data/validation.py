"""The validation gate (docs/data-contract.md, §7): Great Expectations suites over the page and question
tables, record-level quarantine, accepted.json for the trainer, JSON + Data Docs reports.

Each JSONL line becomes one row of a pandas frame. Checks that need Python (JSON parsing,
the pydantic schema, opening the image) fill helper columns; every accept/reject decision is
then made by a GX expectation, and a rejected row's reasons are the expectations it failed
(read from GX's ``unexpected_index_list``).

Over 400 lines on purpose: the page and question suites and the quarantine they feed are one
gate, and their expectations are read and changed together.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from pydantic import ValidationError

from components.config import Params
from components.data.corpus import UnsafePathError, jsonl_lines, load_corpus, safe_join
from components.data.preview import montage, save_png
from components.data.quarantine import Quarantine
from components.data.schema import Page, Question

log = logging.getLogger(__name__)

MAX_SIDE = 20_000  # a page image side beyond this is not a document page


class QuarantineLimitExceeded(Exception):
    """The gate stops the flow: too many records were quarantined (or a table-level check failed)."""


@dataclass(frozen=True)
class Check:
    """One expectation, the reason a failing row gets, and the column holding a per-row detail."""

    expectation: Any
    reason: str
    detail_column: str | None = None
    row_level: bool = True


def _schema_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(
            f"missing field {loc!r}" if err["type"] == "missing" else f"{loc}: {err['msg']}"
        )
    return "; ".join(parts)


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"line is not valid UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"line is not valid JSON ({exc.msg})"
    if not isinstance(record, dict):
        return None, f"line is a JSON {type(record).__name__}, not an object"
    return record, None


def _image_check(root: Path, record: dict[str, Any]) -> tuple[str | None, int | None, int | None]:
    """Open the page image header (no full decode): (error, width, height)."""
    image = record.get("image")
    if not isinstance(image, str):
        return "no image path", None, None
    try:
        path = safe_join(root, image)
    except UnsafePathError as exc:
        return f"image path escapes the corpus root: {exc}", None, None
    if not path.is_file():
        return f"image {image} not found", None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return None, img.width, img.height
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"decompression bomb: {exc}", None, None
    except OSError as exc:
        return f"image {image} unreadable: {exc}", None, None


def page_frame(corpus_dir: Path, lines: list[tuple[int, bytes]]) -> tuple[pd.DataFrame, list[Any]]:
    rows, records = [], []
    for lineno, raw in lines:
        record, parse_error = _parse(raw)
        records.append(record if record is not None else raw.decode("utf-8", "replace"))
        row: dict[str, Any] = {
            "line": lineno,
            "parse_error": parse_error,
            "schema_error": None,
            "id": None,
            "width": None,
            "height": None,
            "image_error": None,
            "size_matches": None,
            "has_text": None,
            "n_words": None,
            "n_blocks": None,
        }
        if record is not None:
            try:
                page = Page.model_validate(record)
                row.update(
                    id=page.id,
                    width=page.width,
                    height=page.height,
                    has_text=bool(page.words),
                    n_words=len(page.words),
                    n_blocks=len(page.blocks),
                )
                error, w, h = _image_check(corpus_dir, record)
                row["image_error"] = error
                if error is None:
                    row["size_matches"] = (w, h) == (page.width, page.height)
            except ValidationError as exc:
                row["schema_error"] = _schema_error(exc)
                if isinstance(record.get("doc"), str) and isinstance(record.get("page"), int):
                    row["id"] = f"{record['doc']}#{record['page']}"
        rows.append(row)
    return pd.DataFrame(rows), records


def question_frame(
    corpus_dir: Path, lines: list[tuple[int, bytes]]
) -> tuple[pd.DataFrame, list[Any]]:
    rows, records = [], []
    for lineno, raw in lines:
        record, parse_error = _parse(raw)
        records.append(record if record is not None else raw.decode("utf-8", "replace"))
        row: dict[str, Any] = {
            "line": lineno,
            "parse_error": parse_error,
            "schema_error": None,
            "id": None,
            "question": None,
            "page_id": None,
            "x0": None,
            "y0": None,
            "x1": None,
            "y1": None,
            "box_error": None,
            "query_image_error": None,
        }
        if record is not None:
            # The pydantic schema checks types and required fields; the box and the question text are
            # left to their own expectations so that the reason names the actual problem.
            probe = dict(record)
            box, text = probe.pop("box", None), probe.get("question")
            if isinstance(text, str):
                probe["question"] = "?"
            try:
                q = Question.model_validate(probe)
                row.update(id=q.id, question=text.strip(), page_id=q.page_id)
                if box is not None:
                    if (
                        isinstance(box, list)
                        and len(box) == 4
                        and all(isinstance(v, (int, float)) for v in box)
                    ):
                        row.update(
                            x0=float(box[0]), y0=float(box[1]), x1=float(box[2]), y1=float(box[3])
                        )
                    else:
                        row["box_error"] = f"box {box!r} is not four numbers"
                if q.query_image:
                    try:
                        if not safe_join(corpus_dir, q.query_image).is_file():
                            row["query_image_error"] = f"query image {q.query_image} not found"
                    except UnsafePathError as exc:
                        row["query_image_error"] = (
                            f"query image path escapes the corpus root: {exc}"
                        )
            except ValidationError as exc:
                row["schema_error"] = _schema_error(exc)
                row["id"] = record.get("id") if isinstance(record.get("id"), str) else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in ("x0", "y0", "x1", "y1"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame, records


def _page_checks(gxe, params: Params) -> list[Check]:
    return [
        Check(
            gxe.ExpectColumnValuesToBeNull(column="parse_error"), "unreadable line", "parse_error"
        ),
        Check(
            gxe.ExpectColumnValuesToBeNull(column="schema_error"),
            "schema violation",
            "schema_error",
        ),
        Check(gxe.ExpectColumnValuesToBeUnique(column="id"), "duplicate page id"),
        Check(
            gxe.ExpectColumnValuesToBeNull(column="image_error"), "bad page image", "image_error"
        ),
        Check(
            gxe.ExpectColumnValuesToBeBetween(column="width", min_value=16, max_value=MAX_SIDE),
            "image size out of range",
        ),
        Check(
            gxe.ExpectColumnValuesToBeBetween(column="height", min_value=16, max_value=MAX_SIDE),
            "image size out of range",
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="size_matches", value_set=[True]),
            "image size differs from the page record",
        ),
        Check(
            gxe.ExpectColumnMeanToBeBetween(
                column="has_text", min_value=params.validate_.min_text_coverage, max_value=1.0
            ),
            "text-layer coverage below validate.min_text_coverage",
            row_level=False,
        ),
    ]


def _question_checks(gxe, page_ids: list[str]) -> list[Check]:
    checks = [
        Check(
            gxe.ExpectColumnValuesToBeNull(column="parse_error"), "unreadable line", "parse_error"
        ),
        Check(
            gxe.ExpectColumnValuesToBeNull(column="schema_error"),
            "schema violation",
            "schema_error",
        ),
        Check(
            gxe.ExpectColumnValueLengthsToBeBetween(column="question", min_value=1),
            "empty question",
        ),
        Check(gxe.ExpectColumnValuesToBeUnique(column="id"), "duplicate question id"),
        Check(gxe.ExpectColumnValuesToBeNull(column="box_error"), "malformed box", "box_error"),
    ]
    checks += [
        Check(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0.0, max_value=1.0),
            "box out of range",
        )
        for c in ("x0", "y0", "x1", "y1")
    ]
    checks += [
        Check(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="x1", column_B="x0", ignore_row_if="either_value_is_missing"
            ),
            "box is empty (needs x0 < x1 and y0 < y1)",
        ),
        Check(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="y1", column_B="y0", ignore_row_if="either_value_is_missing"
            ),
            "box is empty (needs x0 < x1 and y0 < y1)",
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="page_id", value_set=page_ids),
            "doc/page not in the corpus (or quarantined)",
        ),
        Check(
            gxe.ExpectColumnValuesToBeNull(column="query_image_error"),
            "bad query image",
            "query_image_error",
        ),
    ]
    return checks


class _Gate:
    """An ephemeral GX context with a filesystem Data Docs site."""

    def __init__(self, docs_dir: Path):
        import great_expectations as gx

        self.gx = gx
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self.context = gx.get_context(mode="ephemeral")
        try:  # GX's metric progress bars would flood the DVC/Prefect logs
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        except Exception as exc:  # noqa: BLE001 - cosmetic only
            log.debug("could not turn GX progress bars off: %s", exc)
        # the ephemeral context's default site writes to a temp dir: point it at out_dir instead
        self.context.update_data_docs_site(
            "local_site",
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
            },
        )
        self.source = self.context.data_sources.add_pandas("corpus")

    def run(self, table: str, frame: pd.DataFrame, checks: list[Check]):
        gx = self.gx
        asset = self.source.add_dataframe_asset(table)
        batch = asset.add_batch_definition_whole_dataframe(f"{table}_all")
        suite = self.context.suites.add(gx.ExpectationSuite(name=f"{table}_suite"))
        for check in checks:
            suite.add_expectation(check.expectation)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{table}_validation", data=batch, suite=suite)
        )
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=f"{table}_gate",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
                result_format={"result_format": "COMPLETE"},
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        return next(iter(result.run_results.values()))


def _cell(frame: pd.DataFrame, pos: int, column: str) -> Any:
    """A frame value as plain JSON (pandas turns None into NaN in object columns)."""
    value = frame.at[pos, column]
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _expectation_key(config) -> tuple:
    kwargs = config.kwargs
    return (config.type, kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"))


def _judge(
    table: str,
    frame: pd.DataFrame,
    records: list[Any],
    checks: list[Check],
    suite_result,
    quarantine: Quarantine,
) -> tuple[list[int], list[dict[str, Any]], list[str]]:
    """Turn a GX suite result into accepted row positions, per-expectation summaries and table-level failures."""
    by_key = {_expectation_key(c.expectation.configuration): c for c in checks}
    row_reasons: dict[int, list[tuple[str, str]]] = {}
    summaries, table_failures = [], []
    for res in suite_result.results:
        check = by_key[_expectation_key(res.expectation_config)]
        unexpected = list(res.result.get("unexpected_index_list") or [])
        summaries.append(
            {
                "table": table,
                "expectation": res.expectation_config.type,
                "kwargs": {
                    k: v
                    for k, v in res.expectation_config.kwargs.items()
                    if k in ("column", "column_A", "column_B", "min_value", "max_value")
                },
                "success": bool(res.success),
                "unexpected_count": res.result.get("unexpected_count"),
                "observed_value": res.result.get("observed_value"),
                "reason": check.reason,
            }
        )
        if res.exception_info and res.exception_info.get("raised_exception"):
            table_failures.append(
                f"{table}: expectation {res.expectation_config.type} raised {res.exception_info.get('exception_message')}"
            )
            continue
        if not check.row_level:
            if not res.success:
                table_failures.append(
                    f"{table}: {check.reason} (observed {res.result.get('observed_value')})"
                )
            continue
        for idx in unexpected:
            pos = int(idx)
            detail = (
                str(_cell(frame, pos, check.detail_column)) if check.detail_column else check.reason
            )
            reason = "missing field" if detail.startswith("missing field") else check.reason
            row_reasons.setdefault(pos, []).append((reason, detail))
    accepted = []
    for pos in range(len(frame)):
        reasons = row_reasons.get(pos)
        if not reasons:
            accepted.append(pos)
            continue
        seen: list[tuple[str, str]] = list(dict.fromkeys(reasons))
        quarantine.add(
            table,
            seen[0][0],
            "; ".join(d for _, d in seen),
            line=int(frame.at[pos, "line"]),
            id=_cell(frame, pos, "id"),
            reasons=[r for r, _ in seen],
            record=records[pos],
        )
    return accepted, summaries, table_failures


MONTAGE = "montage.png"


def _write_montage(corpus_dir: Path, out_dir: Path, seed: int) -> Path:
    """Sample accepted pages with their evidence boxes, for the reviewer (logged to MLflow)."""
    accepted = load_corpus(corpus_dir, out_dir / "accepted.json")
    return save_png(montage(accepted, n=6, seed=seed), out_dir / MONTAGE)


def validate_corpus(corpus_dir: Path, out_dir: Path, params: Params) -> dict[str, Any]:
    """Validate a corpus folder; write quarantine, accepted.json, report.json and Data Docs into ``out_dir``.

    Raises ``QuarantineLimitExceeded`` (after writing every report) when the quarantined share of
    records exceeds ``validate.max_quarantine_fraction`` or a table-level expectation fails.
    """
    corpus_dir, out_dir = (
        Path(corpus_dir).resolve(),
        Path(out_dir).resolve(),
    )  # GX Data Docs need absolute paths
    pages_file = corpus_dir / "pages.jsonl"
    if not pages_file.exists():
        raise FileNotFoundError(
            f"{pages_file} not found: run `regionops generate` or `regionops import` first"
        )
    for stale in ("quarantine", "data_docs", "accepted.json", "report.json", MONTAGE):
        target = out_dir / stale
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = out_dir / "data_docs"

    quarantine = Quarantine()
    quarantine.ensure("pages", "questions")
    gxe = __import__("great_expectations.expectations", fromlist=["expectations"])
    gate = _Gate(docs_dir)

    page_lines = jsonl_lines(pages_file)
    pframe, precords = page_frame(corpus_dir, page_lines)
    presult = gate.run("pages", pframe, _page_checks(gxe, params))
    page_ok, summaries, failures = _judge(
        "pages", pframe, precords, _page_checks(gxe, params), presult, quarantine
    )
    accepted_page_ids = [_cell(pframe, i, "id") for i in page_ok]

    qfile = corpus_dir / "questions.jsonl"
    question_lines = jsonl_lines(qfile) if qfile.exists() else []
    qframe, qrecords = question_frame(corpus_dir, question_lines)
    question_ok: list[int] = []
    if len(qframe):
        qchecks = _question_checks(gxe, sorted(accepted_page_ids))
        qresult = gate.run("questions", qframe, qchecks)
        question_ok, qsummaries, qfailures = _judge(
            "questions", qframe, qrecords, qchecks, qresult, quarantine
        )
        summaries += qsummaries
        failures += qfailures

    accepted = {
        "pages": accepted_page_ids,
        "questions": [_cell(qframe, i, "id") for i in question_ok],
        "page_lines": [int(pframe.at[i, "line"]) for i in page_ok],
        "question_lines": [int(qframe.at[i, "line"]) for i in question_ok],
    }
    (out_dir / "accepted.json").write_text(json.dumps(accepted, indent=1) + "\n", "utf-8")
    paths = quarantine.write(out_dir / "quarantine")
    montage_path = _write_montage(corpus_dir, out_dir, params.seed) if page_ok else None

    total = len(pframe) + len(qframe)
    n_quarantined = quarantine.count()
    fraction = n_quarantined / total if total else 0.0
    top = quarantine.top_reasons()
    index = docs_dir / "index.html"
    report = {
        "corpus_dir": str(corpus_dir),
        "pages": {
            "total": len(pframe),
            "accepted": len(page_ok),
            "quarantined": quarantine.count("pages"),
            "with_text_layer": int(pframe["has_text"].fillna(False).astype(bool).sum())
            if len(pframe)
            else 0,
        },
        "questions": {
            "total": len(qframe),
            "accepted": len(question_ok),
            "quarantined": quarantine.count("questions"),
            "reasons": dict(quarantine.reasons("questions")),
        },
        "quarantine_fraction": round(fraction, 6),
        "max_quarantine_fraction": params.validate_.max_quarantine_fraction,
        "top_reasons": top,
        "table_failures": failures,
        "expectations": summaries,
        "extra_question_keys": dict(
            Counter(
                k
                for r in qrecords
                if isinstance(r, dict)
                for k in r
                if k not in Question.model_fields
            )
        ),
        "passed": fraction <= params.validate_.max_quarantine_fraction and not failures,
    }
    report["pages"]["reasons"] = dict(quarantine.reasons("pages"))
    (out_dir / "report.json").write_text(
        json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", "utf-8"
    )
    result = {
        "pages": report["pages"],
        "questions": report["questions"],
        "quarantine_fraction": report["quarantine_fraction"],
        "top_reasons": top,
        "passed": report["passed"],
        "accepted": str(out_dir / "accepted.json"),
        "report": str(out_dir / "report.json"),
        "data_docs": str(index) if index.exists() else None,
        "montage": str(montage_path) if montage_path else None,
        "quarantine": paths,
    }
    if not report["passed"]:
        reasons = ", ".join(f"{r['reason']} ({r['count']})" for r in top) or "none"
        problems = [
            f"{n_quarantined}/{total} records quarantined ({fraction:.1%} > "
            f"validate.max_quarantine_fraction={params.validate_.max_quarantine_fraction:.1%})"
            if fraction > params.validate_.max_quarantine_fraction
            else None
        ] + failures
        raise QuarantineLimitExceeded(
            "; ".join(p for p in problems if p) + f". Top reasons: {reasons}. "
            f"See {out_dir / 'report.json'} and {out_dir / 'quarantine'}"
        )
    return result
