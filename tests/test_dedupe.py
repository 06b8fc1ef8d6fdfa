"""Near-duplicate detection (quality/dedupe.py): MinHash finds texts that differ in a few words, English or Chinese,
and keeps distinct ones. Builds exercise it end to end (test_filters.py, test_samples.py)."""

from __future__ import annotations

from longwriter_data.quality.dedupe import NearDuplicates, signature
from longwriter_data.testing.fake_server import chinese, english

CLEAN_EN = [english(500, seed) for seed in range(2)]
CLEAN_ZH = [chinese(500, 0)]


def test_minhash_finds_near_duplicates_and_keeps_distinct_texts():
    seen = NearDuplicates(threshold=0.8)
    base = CLEAN_EN[0]
    words = base.split()
    edited = " ".join(words[:-5] + ["changed"] * 5)  # 5 of 500 words differ
    assert not seen.check_and_add(signature(base))
    assert seen.check_and_add(signature(edited))
    assert not seen.check_and_add(signature(CLEAN_EN[1]))
    assert not seen.check_and_add(signature(CLEAN_ZH[0]))
    assert seen.check_and_add(signature(CLEAN_ZH[0][:-10] + "新的结尾。"))
