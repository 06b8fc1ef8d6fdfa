import pytest

from longwriter_data.generate.plan import PlanError, parse_json_plan, parse_text_plan

PAPER = "Paragraph 1 - Main Point: Open on the harbour at dawn - Word Count: 400 words\n\nParagraph 2 - Main Point: The keeper's log - Word Count: 1000 words."


@pytest.mark.parametrize(
    "text, expected",
    [
        (PAPER, [("Open on the harbour at dawn", 400), ("The keeper's log", 1000)]),
        ("Paragraph 1 - Main Point: History, 1990s to 2020 - Word Count: 1,200 words", [("History, 1990s to 2020", 1200)]),
        ("**Paragraph 1** - **Main Point**: Intro - **Word Count**: 300 words\n* Paragraph 2 – Main Point: Body – Word Count: about 500 words",
         [("Intro", 300), ("Body", 500)]),
        ("段落1 - 主要内容：介绍背景 - 字数要求：400字\n段落2 － 主要内容：分析原因 － 字数要求：800字", [("介绍背景", 400), ("分析原因", 800)]),
        ("段落1 — 主要内容：开头 — 字数要求：300字", [("开头", 300)]),
        ("第一段 - 主要内容：开头 - 字数要求：300字", [("开头", 300)]),
        ("1. Introduction of the topic (300 words)\n2. Body with 3 examples (500-700 words)",
         [("Introduction of the topic", 300), ("Body with 3 examples", 600)]),
        ("**Paragraph 1**\n- Main Point: Opening scene\n- Word Count: 600 words\n\n**Paragraph 2**\n- Main Point: Conflict\n- Word Count: 700 words",
         [("Opening scene", 600), ("Conflict", 700)]),
        ("Here is the plan:\n\nParagraph 1 - Main Point: x - Word Count: 200 words\nI hope this helps!", [("x", 200)]),
        ("- Paragraph 1: Main Point: bullets - Word Count: 250 words", [("bullets", 250)]),
        ("Paragraph 1 - Main Point：全角冒号 - Word Count：450 words", [("全角冒号", 450)]),
    ],
)
def test_text_plan_variants_parse_to_steps(text, expected):
    plan = parse_text_plan(text, max_steps=50)
    assert [(s.main_point, s.words) for s in plan.steps] == expected


@pytest.mark.parametrize("text", ["", "Sure! Here is an outline with ideas.", "Paragraph 1 - Main Point: no count"])
def test_plan_without_steps_is_an_error(text):
    with pytest.raises(PlanError):
        parse_text_plan(text, max_steps=50)


def test_plan_with_too_many_steps_is_an_error():
    text = "\n".join(f"Paragraph {i} - Main Point: p{i} - Word Count: 200 words" for i in range(1, 52))
    with pytest.raises(PlanError, match="51 steps"):
        parse_text_plan(text, max_steps=50)


def test_json_plan_gives_the_same_internal_plan_as_text():
    text_plan = parse_text_plan(PAPER, 50)
    json_plan = parse_json_plan(
        '{"paragraphs": [{"main_point": "Open on the harbour at dawn", "word_count": 400},'
        ' {"main_point": "The keeper\'s log", "word_count": 1000}]}', 50)
    assert json_plan == text_plan
    assert json_plan.render("en") == text_plan.render("en")


@pytest.mark.parametrize("text", ["not json", '{"paragraphs": []}', '{"steps": [1]}', '[1, 2]'])
def test_bad_json_plans_are_errors(text):
    with pytest.raises(PlanError):
        parse_json_plan(text, 50)


# A plan line as GPT-4o writes them for the paper's prompt: a main point described in detail (~62 tokens a line).
DETAILED_LINE = ("Paragraph 12 - Main Point: Describe how the 1854 cholera outbreak in Soho led John Snow to map the "
                 "deaths around the Broad Street pump, how he persuaded the parish to remove its handle, and why "
                 "the episode became a founding story of epidemiology - Word Count: 700 words")


def test_the_default_plan_budget_holds_a_plan_of_the_most_steps_allowed():
    """A plan cut off at plan_max_tokens fails (plan_failed): the default must hold max_paragraphs detailed lines,
    as LongWriter's own scripts allow (max_tokens 4096), not only the ~30 that fit in 2048 tokens."""
    from longwriter_data.config import GenerationConfig
    from longwriter_data.quality.length import approx_tokens

    generation = GenerationConfig()
    plan = "\n\n".join([DETAILED_LINE] * generation.max_paragraphs)
    assert 55 <= approx_tokens(DETAILED_LINE) <= 70
    assert approx_tokens(plan) <= generation.plan_max_tokens
    assert parse_text_plan(plan, max_steps=generation.max_paragraphs).steps[0].words == 700
