"""Closing summaries at a paragraph's end (quality/conclusions.py), which the premature_conclusion filter counts."""

from __future__ import annotations

import pytest

from longwriter_data.quality.conclusions import ends_with_conclusion


@pytest.mark.parametrize(
    "paragraph, closes",
    [
        ("Some text. In conclusion, rivers matter.", True),
        ("Some text. **In summary**, rivers matter. They shape towns. They feed fields.", True),
        ("Some text.\n\n### Conclusion\n\nRivers matter.", True),
        ("To sum up: rivers matter.", True),
        ("一些内容。总之，河流很重要。", True),
        ("一些内容。总而言之，河流塑造了城市。它们养育了农田。", True),
        ("In conclusion, rivers matter. " + "More is said about them later. " * 5, False),  # not near the end
        ("Overall performance improved in the third year.", False),  # "Overall" that opens no summary
        ("The report's summary, in short sentences, came last.", False),
        ("总体上看不出变化，这一年的降雨与往年相近。", False),
    ],
)
def test_a_paragraph_ends_with_a_closing_summary(paragraph, closes):
    assert ends_with_conclusion(paragraph) is closes
