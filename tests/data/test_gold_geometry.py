"""Gold highlight units (components.data.gold_geometry): where a unit starts and ends."""

from __future__ import annotations

from components.data.gold_geometry import Row, layout_units

WIDTH = 612.0
SIZE = 10.0


def row(x: float, top: float, text: str, x1: float = 523.0) -> Row:
    rect = (x, top, x1, top + SIZE)
    return Row(text, rect, SIZE, parts=[rect])


def units(rows: list[Row]) -> list[str]:
    return [u.text for u in layout_units(rows, [], WIDTH)[2]]


def test_an_outdented_row_opens_a_new_block_so_indents_are_read_against_the_right_margin():
    """A macro name set far left of the text column (a margin entry) must not make every
    text-column row look indented: a paragraph's first-line indent then stays one paragraph."""
    texts = units(
        [
            row(144, 100, "pgf keys as shown in the example below.", 324),
            row(
                159,
                112,
                "As demonstrated in this example, if a single comma-separated list of options is",
            ),
            row(
                144,
                124,
                "passed, it applies to both the magnitude and the phase plots. Without any optional",
            ),
            row(144, 136, "arguments, we get a thick black Bode plot.", 335),
            row(103, 148, "\\BodeTF [obj/typ/opt] {num/den} {min-freq}{max-freq}", 400),
            row(
                144,
                160,
                "Plots the Bode plot of a transfer function given in TF format. The mandatory",
            ),
        ]
    )
    assert (
        "As demonstrated in this example, if a single comma-separated list of options is passed, "
        "it applies to both the magnitude and the phase plots. Without any optional arguments, "
        "we get a thick black Bode plot."
    ) in texts


def test_each_bullet_starts_a_list_item_and_its_wrapped_lines_stay_with_it():
    texts = units(
        [
            row(
                83,
                100,
                "\u2022 Overflow (FLAGS_OVERFLOW): An overflow occurs when the exact result of a function is",
            ),
            row(
                83,
                112,
                "a non-zero real number that is larger than the maximum of the exponent range.",
            ),
            row(
                83,
                124,
                "\u2022 Divide-by-zero (FLAGS_DIVBY0): An exact infinite result is obtained from finite inputs.",
                500,
            ),
            row(
                83,
                136,
                "\u2022 NaN (FLAGS_NAN): A NaN exception occurs when the result of a function is NaN.",
                480,
            ),
        ]
    )
    assert texts == [
        (
            "\u2022 Overflow (FLAGS_OVERFLOW): An overflow occurs when the exact result of a function is "
            "a non-zero real number that is larger than the maximum of the exponent range."
        ),
        "\u2022 Divide-by-zero (FLAGS_DIVBY0): An exact infinite result is obtained from finite inputs.",
        "\u2022 NaN (FLAGS_NAN): A NaN exception occurs when the result of a function is NaN.",
    ]


def test_a_unit_never_ends_inside_a_sentence():
    """A bold row followed by a regular one usually starts a new unit; not when the sentence
    runs on in lower case."""
    first = row(
        72, 100, "Process crash and restore. The crash of a process can be represented using"
    )
    first.bold = True
    texts = units(
        [
            first,
            row(72, 112, "a macro with three arguments that name the process and the time.", 400),
        ]
    )
    assert len(texts) == 1 and texts[0].endswith("the process and the time.")


def test_lines_split_at_a_stretched_sentence_space_are_one_row():
    """pdfminer cuts a justified line where the space after a full stop is stretched; the
    pieces are one line of the paragraph, not a unit of their own."""
    rows = [
        row(
            72,
            100,
            "it means the value stored in the destination variable is greater than the exact",
        ),
        row(
            72,
            112,
            "result. For example with the upward rounding mode, the ternary value is usually",
        ),
        row(72, 124, "positive except when the result is exact, in which case it is zero.", 349.5),
        row(357.4, 124, "In the case of an infinite result, it"),
        row(
            72,
            136,
            "is considered as inexact when it was obtained by overflow, and exact otherwise.",
        ),
    ]
    texts = units(rows)
    assert not any(t == "In the case of an infinite result, it" for t in texts)
    assert any(
        "zero. In the case of an infinite result, it is considered as inexact" in t for t in texts
    )
