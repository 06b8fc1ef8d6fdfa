"""Characters that must never reach the dataset: control characters, terminal escape sequences, lone surrogates.

A model (or a pool file) can hold NUL bytes, ANSI colour codes or C1 controls; they are invisible in most viewers,
break tokenizers and some Parquet readers, and a lone surrogate cannot even be encoded as UTF-8. They are removed,
not rejected: the text around them is good. Tabs and newlines stay; CR and CRLF become LF.
"""

from __future__ import annotations

import re

# Whole escape sequences first (so `\x1b[31m` leaves nothing behind, not "[31m"): CSI, OSC, then two-byte escapes;
# then single C0 (except \t \n), DEL, C1 controls and lone surrogates.
# (8-bit C1 introducers are dropped alone: in text they are more often mojibake than a terminal's escape.)
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\n]{0,256}(?:\x07|\x1b\\)"  # OSC (a window title, a hyperlink), when terminated
    r"|\x1b[@-Z\\-_]?"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]"
)
_ANY = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # one character class: a fast scan for clean text


def strip_control(text: str) -> str:
    """`text` without control characters and escape sequences, line breaks as LF; unchanged text is returned as is."""
    if not _ANY.search(text):
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)
