"""The data contract (docs/data-contract.md) as typed records: pages with a text layer, and questions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 normalised to [0, 1], origin top-left
Split = Literal["train", "val", "test"]


def check_box(box: Box) -> Box:
    x0, y0, x1, y1 = box
    if not all(0.0 <= v <= 1.0 for v in box):
        raise ValueError(f"box {list(box)} is outside [0, 1]")
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"box {list(box)} needs x0 < x1 and y0 < y1")
    return box


def page_id(doc: str, page: int) -> str:
    return f"{doc}#{page}"


class Word(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    box: Box

    _box = field_validator("box")(lambda cls, v: check_box(v))


class Block(BaseModel):
    """A layout element (paragraph, table, chart, form, title, entity card) with its text."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    text: str
    box: Box

    _box = field_validator("box")(lambda cls, v: check_box(v))


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doc: str  # relative path of the source document (or a synthetic name)
    page: int = Field(ge=0)
    image: str  # path of the rendered page, relative to the corpus root
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    words: list[Word] = Field(default_factory=list)
    blocks: list[Block] = Field(default_factory=list)
    split: Split = "train"
    collection: str = "default"
    tags: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return page_id(self.doc, self.page)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


class Question(BaseModel):
    # Unknown keys are kept (docs/data-contract.md): they land in ``meta`` rather than failing the record.
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)
    question: str
    answers: list[str] = Field(default_factory=list)
    doc: str | None = None
    # strict: "0" or 0.0 is a typo in the user's file, not a page number; "yes" is not a bool
    page: int | None = Field(default=None, ge=0, strict=True)
    box: Box | None = None
    query_image: str | None = None
    type: str | None = None
    split: Split = "test"
    labelled: bool = Field(
        True, strict=True
    )  # False: the box is withheld from training (hybrid supervision)
    hard_negatives: list[str] = Field(default_factory=list)  # page ids that look alike
    entity: str | None = None  # gold entity name for image queries

    @field_validator("question")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is empty")
        return v

    @field_validator("box")
    @classmethod
    def _box_in_range(cls, v: Box | None) -> Box | None:
        return None if v is None else check_box(v)

    @model_validator(mode="after")
    def _page_needs_doc(self) -> Question:
        if self.page is not None and self.doc is None:
            raise ValueError("page is set but doc is missing")
        return self

    @property
    def page_id(self) -> str | None:
        if self.doc is None or self.page is None:
            return None
        return page_id(self.doc, self.page)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def training_box(self) -> Box | None:
        """The box the trainer may see: withheld on unlabelled questions."""
        return self.box if self.labelled else None
