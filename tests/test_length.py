"""Tests for word counting, required-length extraction and LongBench-Write's length score."""

from __future__ import annotations

import random
import re

import pytest

from longwriter_data.quality.length import (
    RequiredLength,
    approx_tokens,
    benchmark_score,
    compliance_score,
    count_words,
    length_score,
    mentions_length,
    required_length,
    requirement,
)

ABOUT, AT_LEAST, AT_MOST = RequiredLength.about, RequiredLength.at_least, RequiredLength.at_most

SINGLE_LENGTHS = [
    # English digits
    ("Write a 10000-word article about the history of Rome.", 10000),
    ("Write an essay of 10,000 words on climate policy.", 10000),
    ("Write a story of 10 000 words.", 10000),
    ("Write approximately 1200 words about your hometown.", 1200),
    ("Compose a 2.5k-word essay on urban planning.", 2500),
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

# The structured requirement: floors, ceilings, ranges, lengths of each part, and forms led by a cue (issue 15).
REQUIREMENTS = [
    # lengths of each part, multiplied by the count of parts
    ("创作五篇关于“独自旅行去日本”的日记。在日本行程5天，每天一篇。要求描述生动详实，感情真挚，每篇400字左右。", ABOUT(2000)),
    ("1.主要女性角色的个性化特点……2.女性角色的功能与定位……分两部分写，各写1000字", ABOUT(2000)),
    ("Write three essays of 500 words each on friendship.", ABOUT(1500)),
    ("Write 4 short stories, each about 1,000 words.", ABOUT(4000)),
    ("Write five poems of 200 words apiece.", ABOUT(1000)),
    ("写三封家书，每封不少于800字。", AT_LEAST(2400)),
    ("写一部剧本，共五幕，每幕约2000字", ABOUT(10000)),
    ("每章3000字左右，写一部小说的开头", AT_LEAST(3000)),  # no count of chapters: at least one chapter's length
    ("Write a 4000-word report with 5 sections of 800 words each.", ABOUT(4000)),
    ("Write a 3000-word report in 5 sections of 800 words each.", ABOUT(3000)),  # the whole's own length wins
    ("介绍各种茶的冲泡方法，3000字", ABOUT(3000)),  # 各种 is "all kinds", not "each"
    # cue-led lengths without a unit, and units the extractor used to miss
    ("讲稿字数1400左右。", ABOUT(1400)),
    ("请创作悬疑小说的第一章。字数要求：2000左右", ABOUT(2000)),
    ("写一篇300词的英语作文", ABOUT(300)),
    ("用英语写一篇不少于500个单词的演讲稿", AT_LEAST(500)),
    ("写一篇行业分析，字数在4000至5000之间", RequiredLength(4000, 5000)),
    ("写一篇关于家乡的散文，5000以内", AT_MOST(5000)),
    ("写一份报告，字数：不少于3000", AT_LEAST(3000)),
    ("篇幅在2400字以上", AT_LEAST(2400)),
    ("要求剧情长度10000字", ABOUT(10000)),
    ("Word count: 2,000.", ABOUT(2000)),
    ("Word limit: 3000 words.", AT_MOST(3000)),
    ("Essay (word count of at least 1500)", AT_LEAST(1500)),
    ("写一篇字数为3000的文章", ABOUT(3000)),
    ("写两篇文章，每篇各1500字", ABOUT(3000)),
    ("写一部10章的小说，每章3000字", ABOUT(30000)),
    ("Write a 10-chapter novel, each chapter around 3,000 words.", ABOUT(30000)),
    ("Write 5 paragraphs of about 200 words each.", ABOUT(1000)),
    ("Write 2 blog posts, 1000 words each.", ABOUT(2000)),
    # floors
    ("The report should be no less than 2500 words.", AT_LEAST(2500)),
    ("Write at least a 3000-word essay.", AT_LEAST(3000)),
    ("Write a 3000-word minimum essay.", AT_LEAST(3000)),
    ("写一篇3000字起的文章", AT_LEAST(3000)),
    ("全文不少于一万字", AT_LEAST(10000)),
    ("Write at least 3k words on machine learning.", AT_LEAST(3000)),
    ("Write a 5,000+ word guide to sourdough.", AT_LEAST(5000)),
    ("Write at least eight thousand words on the French Revolution.", AT_LEAST(8000)),
    ("Write a minimum of 2000 words.", AT_LEAST(2000)),
    ("Write more than 1500 words on tea.", AT_LEAST(1500)),
    ("Write 3000 words or more about Rome.", AT_LEAST(3000)),
    ("Please introduce at lease 5 bad habits. The content should be no less than 200 words.", AT_LEAST(200)),
    ("请写一篇不少于3000字的报告", AT_LEAST(3000)),
    ("写一篇3000字以上的综述", AT_LEAST(3000)),
    ("至少写5000字", AT_LEAST(5000)),
    ("写一篇超过2000字的文章", AT_LEAST(2000)),
    ("写一篇5000+字的小说", AT_LEAST(5000)),
    # ceilings
    ("Write no more than 3,000 words.", AT_MOST(3000)),
    ("Write under 5k words on jazz.", AT_MOST(5000)),
    ("Keep it within 800 words.", AT_MOST(800)),
    ("Write up to 1200 words.", AT_MOST(1200)),
    ("Write 500 words or less.", AT_MOST(500)),
    ("The essay must not exceed 4000 words.", AT_MOST(4000)),
    ("对于雷锋精神的推文，200字以内", AT_MOST(200)),
    ("不超过3000字", AT_MOST(3000)),
    ("不得超过3000字", AT_MOST(3000)),
    ("写一篇少于1000字的短评", AT_MOST(1000)),
    ("写一段500字内的简介", AT_MOST(500)),
    ("限800字", AT_MOST(800)),
    ("两千字以内", AT_MOST(2000)),
    ("a maximum of 500 words", AT_MOST(500)),
    ("500 words max", AT_MOST(500)),
    ("It should be 1,500 words at most.", AT_MOST(1500)),
    ("写一篇800字以下的短文", AT_MOST(800)),
    # ranges, and a floor and a ceiling stated apart
    ("Write between 4,000 and 5,000 words.", RequiredLength(4000, 5000)),
    ("字数要求100至200字。", RequiredLength(100, 200)),
    ("不少于3000字，不超过5000字", RequiredLength(3000, 5000)),
    ("At least 2000 words and no more than 3000 words.", RequiredLength(2000, 3000)),
    ("字数不少于3000，不多于4000", RequiredLength(3000, 4000)),
    ("Word count: between 1,000 and 1,500", RequiredLength(1000, 1500)),
    ("about 2,000-2,500 words", RequiredLength(2000, 2500)),
    # about
    ("写一篇5000多字的评论", ABOUT(5000)),
    ("写一篇三千余字的文章", ABOUT(3000)),
    ("The answer should be about 6000 words long.", ABOUT(6000)),
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
    "写一篇千字文的赏析",  # the Thousand Character Classic
    "列出10个词语",
    "预算5000以内，推荐一台电脑",
    "推荐一台电脑，不超过5000。",  # a bare number after a qualifier is a length only where the text speaks of 字数
    "写一篇关于三段式结构的介绍",
    "介绍长度为5米的船",
    "Write a 50-page novel about a man's quest for meaning.",
]


@pytest.mark.parametrize(("instruction", "words"), SINGLE_LENGTHS)
def test_required_length_reads_a_single_length(instruction: str, words: int) -> None:
    assert required_length(instruction) == ABOUT(words)


@pytest.mark.parametrize(("instruction", "low", "high"), RANGE_LENGTHS)
def test_required_length_reads_a_range(instruction: str, low: int, high: int) -> None:
    assert required_length(instruction) == RequiredLength(low, high)


@pytest.mark.parametrize("instruction", ["写一篇" + "9" * 400 + "字的文章", "Write " + "9" * 400 + " words.", "字数" + "9" * 400])
def test_a_number_too_long_for_a_float_is_no_length(instruction: str) -> None:
    assert required_length(instruction) is None


@pytest.mark.parametrize(("instruction", "expected"), REQUIREMENTS)
def test_required_length_reads_floors_ceilings_ranges_and_parts(instruction: str, expected: RequiredLength) -> None:
    assert required_length(instruction) == expected


@pytest.mark.parametrize(
    ("length", "record"),
    [
        (ABOUT(3000), {"kind": "about", "target": 3000, "low": 3000, "high": 3000}),
        (AT_LEAST(3000), {"kind": "at_least", "target": 3000, "low": 3000, "high": None}),
        (AT_MOST(3000), {"kind": "at_most", "target": 3000, "low": None, "high": 3000}),
        (RequiredLength(100, 200), {"kind": "range", "target": 200, "low": 100, "high": 200}),
    ],
)
def test_a_requirement_is_stored_with_its_kind_target_and_bounds(length: RequiredLength, record: dict) -> None:
    assert length.as_record() == record
    assert RequiredLength.from_record(record) == length


@pytest.mark.parametrize(
    ("prompt", "length", "expected"),
    [
        ("Write at least 3,000 words.", 3000, AT_LEAST(3000)),  # the prompt agrees: it knows the kind
        ("Write at least 3,000 words.", 4000, ABOUT(4000)),  # the source's number wins
        ("Write a story.", 4000, ABOUT(4000)),
        ("Write 3000-4000 words.", None, RequiredLength(3000, 4000)),
        ("Write a story.", None, None),
    ],
)
def test_requirement_keeps_the_prompts_kind_where_it_agrees_with_a_given_length(prompt, length, expected) -> None:
    assert requirement(prompt, length) == expected


@pytest.mark.parametrize(
    ("prompt", "mentions"),
    [
        ("Write a 50-page novel.", True),
        ("Write 5 paragraphs about dogs.", True),
        ("Write a tweet under 280 characters.", True),
        ("写一篇文章，分3段", True),
        ("字数适中即可", True),
        ("Keep an eye on the word count.", True),
        ("Write 3000 words on tea.", True),
        ("Write a story about a cat.", False),
        ("写一篇关于猫的故事。", False),
        ("Write a ghost story set in 1911 in a 24-hour laundromat.", False),
        ("写一篇学术论文，考察活字印刷术的应用", False),
    ],
)
def test_mentions_length_sees_lengths_the_extractor_does_not_read(prompt: str, mentions: bool) -> None:
    assert mentions_length(prompt) is mentions


@pytest.mark.parametrize("instruction", NO_LENGTH)
def test_required_length_ignores_numbers_that_are_not_word_counts(instruction: str) -> None:
    assert required_length(instruction) is None


def test_required_length_prefers_the_largest_length() -> None:
    text = "Write a 6000-word story in three parts of about 2000 words each."
    assert required_length(text) == RequiredLength(6000, 6000)


@pytest.mark.parametrize(
    ("length", "target"),
    [(ABOUT(3000), 3000), (RequiredLength(3000, 4000), 4000), (AT_LEAST(3000), 3000), (AT_MOST(3000), 3000)],
)
def test_target_is_the_one_length_longbench_write_scores_against(length: RequiredLength, target: int) -> None:
    assert length.target == target  # a range's upper end: the benchmark labels "100至200字" 200


@pytest.mark.parametrize(("low", "high"), [(0, 0), (4000, 3000), (-5, 10), (None, None), (0, None)])
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
    ("words", "required", "score"),
    [
        # a range: full marks inside, S_l against the nearer end outside
        (3000, RequiredLength(3000, 4000), 100.0),
        (3500, RequiredLength(3000, 4000), 100.0),
        (1500, RequiredLength(3000, 4000), 50.0),
        (8000, RequiredLength(3000, 4000), 66.67),
        (16000, RequiredLength(3000, 4000), 0.0),
        (0, RequiredLength(3000, 4000), 0.0),
        # a floor is met up to twice it: 2x a floor scored S_l 66.7 and was dropped before
        (3000, AT_LEAST(3000), 100.0),
        (6000, AT_LEAST(3000), 100.0),
        (9000, AT_LEAST(3000), 83.33),
        (2000, AT_LEAST(3000), 75.0),
        # a ceiling is met down to half of it: 0.6x a ceiling scored S_l 66.7 and was dropped before
        (3000, AT_MOST(3000), 100.0),
        (1800, AT_MOST(3000), 100.0),
        (1500, AT_MOST(3000), 100.0),
        (1000, AT_MOST(3000), 75.0),
        (4500, AT_MOST(3000), 83.33),
        # about N: LongBench-Write's S_l
        (2000, ABOUT(1000), 66.67),
        (800, ABOUT(1000), 87.5),
    ],
)
def test_compliance_score_accepts_every_length_a_requirement_allows(words: int, required: RequiredLength,
                                                                    score: float) -> None:
    assert compliance_score(words, required) == pytest.approx(score, abs=0.01)


@pytest.mark.parametrize(
    ("words", "required", "score"),
    [(6000, AT_LEAST(3000), 66.67), (1800, AT_MOST(3000), 66.67), (3500, RequiredLength(3000, 4000), 92.86)],
)
def test_benchmark_score_keeps_longbench_writes_single_target(words: int, required: RequiredLength,
                                                             score: float) -> None:
    assert benchmark_score(words, required) == pytest.approx(score, abs=0.01)


def _benchmark_count(text: str) -> int:
    """LongBench-Write's own count (THUDM/LongWriter evaluation/pred.py), as its two patterns state it."""
    return len(re.findall(r"[\u4e00-\u9fff]", text)) + len(re.findall(r"\b[a-zA-Z]+\b", text))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("Hello world", 2),
        ("Hello, world! How's it going?", 6),  # an apostrophe splits: "How", "s"
        ("well-known", 2),
        ("e.g. U.S.A.", 5),
        ("你好世界", 4),
        ("你好，世界！", 4),
        ("我爱Python编程", 4),  # a Latin run touching Han characters is no word
        ("苹果的iPhone", 3),
        ("中文 English 混合", 5),
        ("5th place", 1),  # touching a digit: no word
        ("Python3 and GPT-4o", 2),  # "and", "GPT"
        ("A4纸", 1),
        ("There are 3000 words here.", 4),
        ("2023年", 1),
        ("12345 67890", 0),
        ("foo_bar baz", 1),  # the underscore joins: no word
        ("café naïve résumé", 0),  # an accented letter is a word character: the runs around it are no words
        ("cafe naive", 2),
        ("Ｈｅｌｌｏ ＡＩ时代", 2),  # full-width letters count nothing (and are not folded)
        ("x² + y²", 0),  # a superscript digit is a word character
        ("㐀㐁 \uf900 𠀀𪜀", 0),  # extension A, compatibility and extension B ideographs are outside U+4E00-U+9FFF
        ("〇々", 0),
        ("カタカナ and ひらがな", 1),  # kana count nothing
        ("テストtest", 0),  # and a Latin run touching kana is no word
        ("한국어 text", 1),
        ("Hello\u200bworld", 2),  # a zero-width space separates
        ("👍ok", 1),
        ("   \n\t ", 0),
        ("。，！？", 0),
    ],
)
def test_count_words_is_longbench_writes_count(text: str, words: int) -> None:
    assert count_words(text) == words == _benchmark_count(text)


def test_count_words_equals_longbench_writes_on_random_mixed_text() -> None:
    alphabet = list("abcXYZ _-'.,3９") + ["中", "文", "é", "Ａ", "㐀", "カ", "\n", "’", "²", "ß", "\u200b", "İ", "ﬁ"]
    rng = random.Random(15)
    for _ in range(3000):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
        assert count_words(text) == _benchmark_count(text), text


@pytest.mark.parametrize("text, tokens", [
    ("", 1),
    ("word " * 40, 51),  # 200 characters / 4
    ("中文" * 30, 41),  # 60 Han characters / 1.5
    ("中文，abcd" * 10, 26),  # 20 Han (13.3) + 50 others (12.5)
    ("café «naïve» ", 4),  # not ASCII, no Han: 13 characters / 4
])
def test_approx_tokens_counts_han_characters_apart(text, tokens):
    assert approx_tokens(text) == tokens
