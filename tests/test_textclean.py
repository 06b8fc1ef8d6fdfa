"""Control characters and escape sequences stripped from answers and pool text (textclean.py)."""

from __future__ import annotations

import pytest

from longwriter_data.textclean import strip_control


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("plain text\twith a tab\nand a line", "plain text\twith a tab\nand a line"),
        ("\x1b[31mred\x1b[0m text", "red text"),
        ("bold \x1b[1;32;40mgreen\x1b[m end", "bold green end"),
        ("NUL\x00 BEL\x07 BS\x08 VT\x0b FF\x0c ESC\x1b DEL\x7f", "NUL BEL BS VT FF ESC DEL"),
        ("C1 \x85next \x9b2J \x90dcs", "C1 next 2J dcs"),
        ("title\x1b]0;window title\x07 after", "title after"),
        ("open \x1b]8;;unterminated link", "open 8;;unterminated link"),  # only what is surely an escape
        ("windows\r\nlines\rold mac", "windows\nlines\nold mac"),
        ("lone \ud800surrogate", "lone surrogate"),
        ("中文\x00内容，emoji 🙂 stays", "中文内容，emoji 🙂 stays"),
    ],
)
def test_control_characters_and_escape_sequences_are_stripped(raw, clean):
    assert strip_control(raw) == clean
    clean.encode("utf-8")  # nothing left that UTF-8 cannot hold
