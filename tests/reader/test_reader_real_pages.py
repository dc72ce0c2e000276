"""Reader training data from real pages: gold units, the retriever's own mistakes as noise, measured ρ."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest

from components.config import Params
from components.reader import data as reader_data
from components.reader.data import ReaderExamples
from components.reader.noise import NoiseSpec
from components.reader.real_pages import check_trainable, pages_key
from components.regions.extract import Region

# Page "p": a definition paragraph at the top (the question's unit), a heading and a caption below.
P_WORDS = [
    ("The", 0.1, 0.10, 0.15, 0.12),
    ("retention", 0.16, 0.10, 0.3, 0.12),
    ("field", 0.31, 0.10, 0.4, 0.12),
    ("counts", 0.1, 0.13, 0.2, 0.15),
    ("heartbeats", 0.21, 0.13, 0.35, 0.15),
    ("Overview", 0.1, 0.40, 0.3, 0.42),
    ("Figure", 0.1, 0.70, 0.2, 0.72),
    ("3", 0.21, 0.70, 0.25, 0.72),
]
Q_WORDS = [
    ("Unrelated", 0.1, 0.10, 0.3, 0.12),
    ("heartbeats", 0.1, 0.50, 0.3, 0.52),
    ("text", 0.1, 0.70, 0.3, 0.72),
]


def _page(pid, words, split="train"):
    return SimpleNamespace(
        id=pid,
        split=split,
        blocks=[],
        words=[SimpleNamespace(text=t, box=(x0, y0, x1, y1)) for t, x0, y0, x1, y1 in words],
    )


def _question(qid, box, answers=("heartbeats",)):
    return SimpleNamespace(
        id=qid,
        page_id="p",
        answers=list(answers),
        box=list(box),
        split="train",
        question="Fill in the blank: the retention field counts ___",
        query_image=None,
        entity=None,
        hard_negatives=[],
        meta={},
    )


class _Corpus:
    root = "fake"

    def __init__(self, pages, questions):
        self.pages, self.questions = pages, questions

    def pages_in(self, split):
        return [p for p in self.pages if p.split == split]

    def questions_in(self, split):
        return [q for q in self.questions if q.split == split]


class _Index:
    dim, grid = 4, 4

    def has_page(self, pid):
        return pid in ("p", "q")

    def cell_vectors(self, pid):
        return np.ones((16, 4), np.float32)


def _region(pid, box):
    cells = np.zeros((4, 4), bool)
    cells[int(box[1] * 4) : int(np.ceil(box[3] * 4)), :] = True
    return Region(pid, box, 1.0, int(cells.sum()), cells)


class _Engine:
    """The retriever's top-3: a wrong page first, the evidence second, a wrong region of the gold page third."""

    def search_vector(self, vec, question=None):
        return ["hits"]

    def regions_for(self, hits, k, question=None):
        return [
            _region("q", (0.0, 0.45, 1.0, 0.55)),
            _region("p", (0.0, 0.05, 1.0, 0.2)),
            _region("p", (0.0, 0.65, 1.0, 0.75)),
        ][:k]


@pytest.fixture
def examples(monkeypatch):
    import components.model.encode as enc

    monkeypatch.setattr(
        enc, "encode_queries", lambda retriever, texts: np.ones((len(texts), 4), np.float32)
    )
    params = Params().model_copy(
        update={"reader": Params().reader.model_copy(update={"contexts": 3, "top_m": 2})}
    )
    unit = (0.05, 0.09, 0.5, 0.16)  # the derived paragraph's box: not any block's box
    corpus = _Corpus([_page("p", P_WORDS), _page("q", Q_WORDS)], [_question("q1", unit)])
    return ReaderExamples(params, corpus, _Index(), None, "train", engine=_Engine(), source="real")


def test_the_gold_context_is_the_questions_own_unit_when_its_words_hold_the_answer(examples):
    [sample] = examples.samples
    assert sample.gold == ("p", (0.05, 0.09, 0.5, 0.16))
    _, contexts, answer = examples.contexts_for(0, NoiseSpec(3, 0.0), random.Random(0))
    gold = contexts[answer[0]]
    assert gold.is_gold and gold.words[answer[1]] == "heartbeats" and "Overview" not in gold.words


def test_retrieved_evidence_is_measured_and_rho_is_the_share_of_wrong_regions(examples):
    [sample] = examples.samples
    # region on another page (holds the word, wrong page), the evidence, a wrong region of the gold page
    assert sample.retrieved_gold == [False, True, False]
    assert examples.measured_rho() == pytest.approx(2 / 3)


def test_retrieved_contexts_take_their_distractors_from_the_retrievers_own_mistakes(examples):
    wrong = {("q", (0.0, 0.45, 1.0, 0.55)), ("p", (0.0, 0.65, 1.0, 0.75))}
    rng = random.Random(0)
    for _ in range(50):
        slots, flags = examples.slots_for(0, NoiseSpec(3, 2 / 3, 0.0, 0.0), rng, "retrieved")
        assert sum(flags) == 1 and slots[flags.index(True)][:2] == examples.samples[0].gold
        distractors = {(pid, tuple(box)) for (pid, box, _), g in zip(slots, flags) if not g}
        assert (
            len(distractors) >= 1 and distractors <= wrong
        )  # never a random page while mistakes exist


def test_top_k_contexts_are_the_retrieved_regions_as_returned(examples):
    _, contexts, answer = examples.contexts_for(
        0, NoiseSpec(3, 0.0), random.Random(0), source="top_k"
    )
    assert [c.page_id for c in contexts] == ["q", "p", "p"]
    assert answer is not None and answer[0] == 1 and contexts[1].words[answer[1]] == "heartbeats"
    examples.samples[0].retrieved_gold = [
        False,
        False,
        False,
    ]  # evidence not retrieved: "no answer"
    assert examples.contexts_for(0, NoiseSpec(3, 0.0), random.Random(0), source="top_k")[2] is None


def test_retrieved_sources_need_the_retrievers_regions(examples):
    examples.has_retrieval = False
    with pytest.raises(ValueError, match="need the retriever"):
        examples.slots_for(0, NoiseSpec(3, 1 / 3), random.Random(0), "retrieved")
    with pytest.raises(ValueError, match="unknown reader context source"):
        examples.slots_for(0, NoiseSpec(3, 1 / 3), random.Random(0), "bogus")


def test_the_real_dev_set_is_never_reader_training_data(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"set": "dev"}))
    with pytest.raises(ValueError, match="the judge"):
        check_trainable(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"set": "train"}))
    check_trainable(tmp_path)  # a train set passes


def test_real_pages_cache_key_follows_questions_docs_and_retriever_not_reader_params(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "questions.jsonl").write_text('{"id": "1"}\n')
    params = Params()
    key = pages_key(params, tmp_path, "fp1")
    reader_changed = params.model_copy(
        update={"reader": params.reader.model_copy(update={"max_steps": 7})}
    )
    assert pages_key(reader_changed, tmp_path, "fp1") == key
    assert pages_key(params, tmp_path, "fp2") != key
    (tmp_path / "questions.jsonl").write_text('{"id": "2"}\n')
    assert pages_key(params, tmp_path, "fp1") != key


def test_context_sources_are_the_documented_ones():
    assert reader_data.CONTEXT_SOURCES == ("injected", "retrieved", "top_k")


class _MetaIndex(_Index):
    def meta(self, pid):
        return SimpleNamespace(words=[[t, *b] for t, *b in (P_WORDS if pid == "p" else Q_WORDS)])


def test_the_reader_is_scored_over_a_systems_top_k_regions_the_heuristic_over_its_top_one():
    """Evaluation answers as the engine serves: the reader reads the system's first reader.contexts
    regions (not only the top one); the text-layer heuristic reads the top region."""
    from components.config import ReaderParams
    from components.evaluation.region_answer import RegionAnswerer

    seen = []

    class _Reader:
        p = ReaderParams(contexts=2)

        def region_contexts(self, regions, query_vec, seed=0):
            seen.append([(r.page_id, r.box) for r in regions])
            return regions

        def answer(self, question, contexts):
            return SimpleNamespace(answer="heartbeats")

    more = [("q", (0.0, 0.45, 1.0, 0.55)), ("p", (0.0, 0.65, 1.0, 0.75)), ("zz", (0, 0, 1, 1))]
    said = RegionAnswerer(_MetaIndex(), _Reader()).answer(
        "q?", "p", (0.0, 0.05, 1.0, 0.2), None, more
    )
    assert said == "heartbeats"
    assert seen == [
        [("p", (0.0, 0.05, 1.0, 0.2)), ("q", (0.0, 0.45, 1.0, 0.55))]
    ]  # top-2, in rank order
    text = RegionAnswerer(_MetaIndex(), None).answer(
        "What counts heartbeats?", "p", (0.0, 0.05, 1.0, 0.2), None, more
    )
    assert "Overview" not in text and "Unrelated" not in text  # heuristic: the top region only


def test_questions_outside_the_retrieved_subset_get_injected_distractors(monkeypatch):
    import components.model.encode as enc

    monkeypatch.setattr(
        enc, "encode_queries", lambda retriever, texts: np.ones((len(texts), 4), np.float32)
    )
    reader = Params().reader.model_copy(
        update={"contexts": 3, "top_m": 2, "max_retrieved_questions": 1}
    )
    params = Params().model_copy(update={"reader": reader})
    unit = (0.05, 0.09, 0.5, 0.16)
    corpus = _Corpus(
        [_page("p", P_WORDS), _page("q", Q_WORDS)], [_question("q1", unit), _question("q2", unit)]
    )
    ex = ReaderExamples(params, corpus, _Index(), None, "train", engine=_Engine(), source="real")
    assert sorted(bool(s.retrieved) for s in ex.samples) == [False, True]  # the cap: one retrieved
    plain = next(i for i, s in enumerate(ex.samples) if not s.retrieved)
    slots, flags = ex.slots_for(plain, NoiseSpec(3, 0.0), random.Random(0), "top_k")
    assert slots[flags.index(True)][:2] == ex.samples[plain].gold  # injected: the gold unit is in
