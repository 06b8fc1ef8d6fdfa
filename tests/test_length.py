"""Tests for word counting, required-length extraction and LongBench-Write's length score."""

from __future__ import annotations

import pytest

from longwriter_data.length import (
    RequiredLength,
    approx_tokens,
    count_words,
    length_score,
    length_score_range,
    required_length,
)

SINGLE_LENGTHS = [
    # English digits
    ("Write a 10000-word article about the history of Rome.", 10000),
    ("Write an essay of 10,000 words on climate policy.", 10000),
    ("Write a story of 10 000 words.", 10000),
    ("The report should be no less than 2500 words.", 2500),
    ("Write at least 3k words on machine learning.", 3000),
    ("Write approximately 1200 words about your hometown.", 1200),
    ("Compose a 2.5k-word essay on urban planning.", 2500),
    ("Write a 5,000+ word guide to sourdough.", 5000),
    ("The essay must be 3000 words long.", 3000),
    ("Give me a 1500 word summary.", 1500),
    ("Write a 10K-word novella.", 10000),
    ("Write about 5 thousand words on jazz.", 5000),
    ("Write a 1.5k word blog post.", 1500),
    ("Write a story (800 words) about a lighthouse.", 800),
    ("Write ~1200 words on tea.", 1200),
    ("Write a 20000-word thesis chapter.", 20000),
    ("Write one 500-word essay.", 500),
    # English number words
    ("Write around five thousand words about the ocean.", 5000),
    ("Write twelve hundred words on chess.", 1200),
    ("Write twenty-five hundred words about Mars.", 2500),
    ("Write a thousand words on friendship.", 1000),
    ("Write a hundred words on spring.", 100),
    ("Write ten thousand words about the Silk Road.", 10000),
    ("Write a five-hundred-word essay.", 500),
    ("Write one hundred and fifty words about cats.", 150),
    ("Write two thousand five hundred words on AI safety.", 2500),
    ("Write about Fifty Words on rain.", 50),
    ("Write a two-thousand-word reflection.", 2000),
    ("Write at least eight thousand words on the French Revolution.", 8000),
    # English with distractor numbers
    ("In 2023, write a 3000-word review of the year.", 3000),
    ("Write 10 tips in about 800 words.", 800),
    ("Write 5 paragraphs, 2000 words in total.", 2000),
    ("Top 10 travel destinations: write 1500 words.", 1500),
    ("Write a 4000-word report with 5 sections of 800 words each.", 4000),
    ("For a $500 budget, write a 1200-word plan.", 1200),
    # Chinese digits
    ("写一篇5000字的文章", 5000),
    ("写一篇5000字左右的散文", 5000),
    ("请写一篇不少于3000字的报告", 3000),
    ("写一篇2万字的小说", 20000),
    ("写一篇1.5万字的论文", 15000),
    ("写一篇5千字的游记", 5000),
    ("写一篇10,000字的文章", 10000),
    ("写一篇３０００字的文章", 3000),
    ("写3000个字", 3000),
    ("写一篇约3000个汉字的文章", 3000),
    ("写一篇5000多字的评论", 5000),
    ("写一篇2万5千字的报告", 25000),
    ("写一篇1万5000字的长文", 15000),
    ("写一篇3000字以上的综述", 3000),
    ("2023年的总结，写3000字", 3000),
    # Chinese numerals
    ("写一篇一万字的小说", 10000),
    ("写一篇三千字的文章", 3000),
    ("写一篇两万字的小说", 20000),
    ("写一篇三千五百字的散文", 3500),
    ("写一篇三千五字的散文", 3500),
    ("写一篇一万五千字的报告", 15000),
    ("写一篇两万五字的报告", 25000),
    ("写一篇三千余字的文章", 3000),
    ("写一篇八百字的作文", 800),
    ("写一篇二十字的广告词", 20),
    ("写一篇一千零五十字的故事", 1050),
    ("写一篇万字长文", 10000),
    ("写一篇十万字的小说", 100000),
    ("写一首一百五字的诗", 150),
]

RANGE_LENGTHS = [
    ("Write between 3000 and 4000 words on Kant.", 3000, 4000),
    ("Write 3000-4000 words on Kant.", 3000, 4000),
    ("Write 3,000 to 4,000 words on Kant.", 3000, 4000),
    ("Write 3000 – 4000 words on Kant.", 3000, 4000),
    ("Write 3000~4000 words on Kant.", 3000, 4000),
    ("Write a 3-4k word essay.", 3000, 4000),
    ("Write a 3k-4k word essay.", 3000, 4000),
    ("Write between three and four thousand words.", 3000, 4000),
    ("Write a 1,500-2,000 word article.", 1500, 2000),
    ("Write 3000 words to 4000 words.", 3000, 4000),
    ("Write from 4000 to 3000 words.", 3000, 4000),
    ("写一篇3000至4000字的文章", 3000, 4000),
    ("写一篇3000~4000字的文章", 3000, 4000),
    ("写一篇3000～4000字的文章", 3000, 4000),
    ("写一篇3000-4000字的文章", 3000, 4000),
    ("写一篇3000字到4000字的文章", 3000, 4000),
    ("写一篇三千到五千字的文章", 3000, 5000),
    ("写一篇三到五万字的小说", 30000, 50000),
]

NO_LENGTH = [
    "What happened in 2023?",
    "List the top 10 programming languages.",
    "Top 10 movies of the decade, with reasons.",
    "Give me 10 tips for better sleep.",
    "Write 5 paragraphs about dogs.",
    "Write a novel in 3 chapters.",
    "Plan an event for 500 people.",
    "Write an ad for a $1,000 laptop.",
    "Sales grew by 45% in 2022; explain why.",
    "Write a tweet under 280 characters.",
    "Write a summary of 1000 characters.",
    "Keep an eye on the word count.",
    "Write a long essay about the sea.",
    "List the top 10 words in English.",
    "Write a few thousand words about sailing.",
    "Thousands of words have been written on this.",
    "",
    "写一部3个章节的小说",
    "2023年发生了什么？",
    "介绍一下三字经",
    "在十字路口写一篇文章",
    "写一个500字符以内的简介",
    "英语有26个字母",
    "请背诵一字一句",
    "列举十个四字成语",
    "请注意字数",
    "写一篇关于春天的文章",
]


@pytest.mark.parametrize(("instruction", "words"), SINGLE_LENGTHS)
def test_required_length_reads_a_single_length(instruction: str, words: int) -> None:
    assert required_length(instruction) == RequiredLength(words, words)


@pytest.mark.parametrize(("instruction", "low", "high"), RANGE_LENGTHS)
def test_required_length_reads_a_range(instruction: str, low: int, high: int) -> None:
    assert required_length(instruction) == RequiredLength(low, high)


@pytest.mark.parametrize("instruction", NO_LENGTH)
def test_required_length_ignores_numbers_that_are_not_word_counts(instruction: str) -> None:
    assert required_length(instruction) is None


def test_required_length_prefers_the_largest_length() -> None:
    text = "Write a 6000-word story in three parts of about 2000 words each."
    assert required_length(text) == RequiredLength(6000, 6000)


@pytest.mark.parametrize(("length", "target"), [(RequiredLength(3000, 3000), 3000), (RequiredLength(3000, 4000), 3500)])
def test_target_is_the_midpoint(length: RequiredLength, target: int) -> None:
    assert length.target == target


@pytest.mark.parametrize(("low", "high"), [(0, 0), (4000, 3000), (-5, 10)])
def test_required_length_rejects_impossible_bounds(low: int, high: int) -> None:
    with pytest.raises(ValueError):
        RequiredLength(low, high)


@pytest.mark.parametrize(
    ("words", "required", "score"),
    [
        (1000, 1000, 100.0),
        (2000, 1000, 66.67),
        (4000, 1000, 0.0),
        (8000, 1000, 0.0),
        (500, 1000, 50.0),
        (333, 1000, 0.0),
        (250, 1000, 0.0),
        (1500, 1000, 83.33),
        (800, 1000, 87.5),
        (0, 1000, 0.0),
    ],
)
def test_length_score_follows_longbench_write(words: int, required: int, score: float) -> None:
    assert length_score(words, required) == pytest.approx(score, abs=0.01)


def test_length_score_at_a_third_is_exactly_zero() -> None:
    assert length_score(1000, 3000) == 0.0


def test_length_score_rejects_a_zero_requirement() -> None:
    with pytest.raises(ValueError):
        length_score(100, 0)


@pytest.mark.parametrize(
    ("words", "score"),
    [
        (3000, 100.0),
        (3500, 100.0),
        (4000, 100.0),
        (1500, 50.0),  # below: scored against low = 3000
        (8000, 66.67),  # above: scored against high = 4000
        (16000, 0.0),
        (0, 0.0),
    ],
)
def test_length_score_range_scores_against_the_nearer_bound(words: int, score: float) -> None:
    assert length_score_range(words, RequiredLength(3000, 4000)) == pytest.approx(score, abs=0.01)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("Hello world", 2),
        ("Hello, world! How's it going?", 6),  # "How's" is two letter runs
        ("well-known", 2),
        ("你好世界", 4),
        ("你好，世界！", 4),
        ("我爱Python编程", 5),
        ("There are 3000 words here.", 4),
        ("2023年", 1),
        ("12345 67890", 0),
        ("   \n\t ", 0),
        ("。，！？", 0),
    ],
)
def test_count_words_counts_cjk_characters_and_latin_runs(text: str, words: int) -> None:
    assert count_words(text) == words


@pytest.mark.parametrize("text, tokens", [
    ("", 1),
    ("word " * 40, 51),  # 200 characters / 4
    ("中文" * 30, 41),  # 60 Han characters / 1.5
    ("中文，abcd" * 10, 26),  # 20 Han (13.3) + 50 others (12.5)
    ("café «naïve» ", 4),  # not ASCII, no Han: 13 characters / 4
])
def test_approx_tokens_counts_han_characters_apart(text, tokens):
    assert approx_tokens(text) == tokens
