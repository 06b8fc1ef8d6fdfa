"""Prepared pools and the seeded draw (pools/instructions.py): bad rows named, mixing, the draw order, length
injection."""

from __future__ import annotations

import pytest

from longwriter_data.config import LengthInjection, PoolsConfig, PoolSource
from longwriter_data.errors import UserError
from longwriter_data.pools.instructions import DrawSettings, Instruction, PreparedPools, draw, inject_length
from longwriter_data.quality.length import RequiredLength, required_length
from longwriter_data.text import detect_lang
from tests.conftest import write_pool


def load_pools(sources, tmp_path=None, **options):
    return PreparedPools(PoolsConfig(sources=sources, **options))


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"id": "x"}', "field 'prompt' is missing"),
        ('{"prompt": "   "}', "field 'prompt' is missing"),
        ('{"prompt": "ok", "length": "long"}', "field 'length' has the wrong type"),
    ],
)
def test_malformed_pool_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"prompt": "fine"}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"pool.jsonl:3: {message}"):
        load_pools([PoolSource(path=path)])


def _prompts(sources, seed):
    return [inst.prompt for inst in draw(load_pools(sources), DrawSettings(seed))]


def test_draws_are_deterministic_for_a_seed_and_use_each_instruction_once(tmp_path):
    a = write_pool(tmp_path / "a.jsonl", [f"a{i}" for i in range(50)])
    b = write_pool(tmp_path / "b.jsonl", [f"b{i}" for i in range(50)])
    sources = [PoolSource(path=a, weight=3), PoolSource(path=b, weight=1)]
    first = _prompts(sources, seed=7)
    assert first == _prompts(sources, seed=7)
    assert first != _prompts(sources, seed=8)
    assert sorted(first) == sorted([f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)])
    # weight 3:1 -> the first 40 draws are mostly from pool a
    assert sum(p.startswith("a") for p in first[:40]) >= 24


def test_duplicate_instructions_are_drawn_once_across_pools(tmp_path):
    a = write_pool(tmp_path / "a.jsonl", ["same prompt", "only a"])
    b = write_pool(tmp_path / "b.jsonl", ["same prompt ", "only b"])
    assert sorted(_prompts([PoolSource(path=a), PoolSource(path=b)], 0)) == ["only a", "only b", "same prompt"]


def test_sequence_numbers_and_metadata(tmp_path):
    path = write_pool(tmp_path / "p.jsonl", [{"id": "x1", "prompt": "写一篇小说", "type": "Literature and Creative Writing"},
                                             {"prompt": "Write an essay", "lang": "en", "length": 3000}])
    drawn = sorted(draw(load_pools([PoolSource(path=path)]), DrawSettings(0)), key=lambda i: i.seq)
    assert [i.seq for i in drawn] == [0, 1]
    by_prompt = {i.prompt: i for i in drawn}
    assert by_prompt["写一篇小说"].lang == "zh" and by_prompt["写一篇小说"].id == "x1"
    assert by_prompt["Write an essay"].length == 3000 and by_prompt["Write an essay"].id == "p:3"[:0] + "p:2"


@pytest.mark.parametrize("text, lang", [("Write a story", "en"), ("写一个故事", "zh"), ("请用中文写 a story about 猫和狗的友谊", "zh")])
def test_language_detection(text, lang):
    assert detect_lang(text) == lang


def test_added_records_are_drawn_as_one_more_source_through_the_same_rules(tmp_path):
    path = write_pool(tmp_path / "p.jsonl", ["Write a long essay about rivers.", "Write a long essay about lakes."])
    pools = load_pools([PoolSource(path=path)], languages=["en"])
    fingerprints = list(pools.fingerprints)
    added = pools.add("extra", [{"id": "x:1", "prompt": "Write a long essay about seas.", "type": "Popular Science"},
                                {"id": "x:2", "prompt": "Write a long essay about rivers."},
                                {"id": "x:3", "prompt": "写一篇关于海洋的长文。"}], weight=2.0)
    assert added == 1 and pools.dropped == {"exact_duplicate": 1, "language": 1}
    assert pools.fingerprints == fingerprints  # drift is judged on the configured sources only
    drawn = {i.prompt: i for i in draw(pools, DrawSettings(0))}
    assert len(drawn) == 3
    seas = drawn["Write a long essay about seas."]
    assert (seas.pool, seas.id, seas.type) == ("extra", "x:1", "Popular Science")
    assert pools.weight((1, "en", "Popular Science")) == 2.0


def test_an_instruction_survives_the_record_its_first_step_stores():
    from longwriter_data.quality.length import RequiredLength
    from longwriter_data.pools.instructions import Instruction

    for required in (RequiredLength(3000, 5000), RequiredLength.at_least(3000), RequiredLength.at_most(900), None):
        instruction = Instruction(seq=7, id="a:1", prompt="写一篇报告。", lang="zh", type="News Report", length=None,
                                  pool="seed_zh", required=required, injected=required is not None)
        assert Instruction.from_record(7, instruction.to_record()) == instruction


@pytest.mark.parametrize(
    "prompt, required",
    [
        ("Write a 50-page novel about a man's quest for meaning.", None),  # a length, but not in words
        ("Write an essay in 5 paragraphs about dogs.", None),
        ("写一篇关于春天的散文，篇幅适中。", None),
        ("写一篇散文，字数1400左右。", 1400),  # read today: the pool's draw keeps it, nothing is added
        ("Write a story about a lighthouse.", "injected"),
        ("写一篇关于春天的散文。", "injected"),
    ],
)
def test_the_draw_adds_no_length_to_an_instruction_that_asks_for_one_in_any_form(tmp_path, prompt, required):
    from longwriter_data.config import LengthInjection

    pools = load_pools([PoolSource(path=write_pool(tmp_path / "pool.jsonl", [prompt]))])
    (instruction,) = draw(pools, DrawSettings(0, LengthInjection(share=1.0)))
    if required == "injected":
        assert instruction.injected and instruction.prompt != prompt and instruction.required is not None
    else:
        assert not instruction.injected and instruction.prompt == prompt
        assert (instruction.required.target if instruction.required else None) == required


def test_a_pools_length_keeps_the_kind_its_prompt_states(tmp_path):
    from longwriter_data.quality.length import RequiredLength

    path = tmp_path / "pool.jsonl"
    path.write_text('{"prompt": "以民国上海为背景写一章小说，不少于3800字。", "length": 3800}\n'
                    '{"prompt": "Write a story of no more than 5,000 words.", "length": 4000}\n', encoding="utf-8")
    drawn = {i.length: i.required for i in draw(load_pools([PoolSource(path=path)]), DrawSettings(0))}
    assert drawn == {3800: RequiredLength.at_least(3800), 4000: RequiredLength.about(4000)}  # a disagreeing `length` wins


@pytest.mark.parametrize("lang, prompt", [("en", "Write a story about a cat."), ("zh", "写一篇关于猫的故事。")])
def test_length_injection_adds_a_requirement_in_the_instructions_language(lang, prompt):
    injection = LengthInjection(min_words=2000, max_words=20000)
    lengths = []
    for seq in range(200):
        out = inject_length(Instruction(seq=seq, id="x", prompt=prompt, lang=lang), injection, seed=1)
        assert out.injected and out.prompt.startswith(prompt)
        assert required_length(out.prompt) == out.required  # the extractor reads what was injected
        assert ("字" in out.prompt[len(prompt):]) == (lang == "zh")
        lengths.append(out.required.low)
    assert min(lengths) >= 2000 and max(lengths) <= 20000
    assert sum(n < 6000 for n in lengths) > sum(n >= 14000 for n in lengths)  # log-uniform leans short
    again = inject_length(Instruction(seq=7, id="x", prompt=prompt, lang=lang), injection, seed=1)
    assert again.required.low == lengths[7]  # deterministic for a seed and a place in the draw


def test_length_injection_leaves_instructions_with_a_length_alone_and_respects_share():
    has_length = Instruction(seq=0, id="x", prompt="Write 3000 words.", lang="en", required=RequiredLength(3000, 3000))
    assert inject_length(has_length, LengthInjection(), seed=0) is has_length
    none = [inject_length(Instruction(seq=i, id="x", prompt="Write.", lang="en"), LengthInjection(share=0), 0)
            for i in range(20)]
    assert not any(i.injected for i in none)
