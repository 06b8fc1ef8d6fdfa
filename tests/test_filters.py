"""Every filter rejects with its named reason, in unit tests and in builds; extension of short drafts; the LLM
selector."""

from __future__ import annotations

import json

import datasets
import pytest

from longwriter_data.cli import main
from longwriter_data.config import FiltersConfig
from longwriter_data.quality.filters import Sample, judge, repetition_ratio
from longwriter_data.quality.length import RequiredLength
from longwriter_data.testing.fake_server import chinese, english
from tests.conftest import jobs, write_config, write_pool

CLEAN_EN = [english(500, seed) for seed in range(5)]  # 2,500 words of non-repeating text
CLEAN_ZH = [chinese(500, seed) for seed in range(5)]
CONCLUDED_EN = [p + "\n\nIn summary, this part has shown why the question matters. It sets up what follows."
                for p in CLEAN_EN]
CONCLUDED_ZH = [p + "综上所述，这一部分说明了问题的关键。" for p in CLEAN_ZH]


def sample(paragraphs=CLEAN_EN, lang="en", required=None, planned=2500) -> Sample:
    return Sample(prompt="Write an essay.", lang=lang, required=required, paragraphs=list(paragraphs),
                  planned_words=planned)


@pytest.mark.parametrize(
    "case, reason",
    [
        (sample(), None),
        (sample(CLEAN_ZH, lang="zh"), None),
        (sample(CLEAN_EN[:3]), "too_short"),
        (sample([*CLEAN_EN, english(30000, 9)]), "too_long"),
        (sample(required=RequiredLength(5000, 5000)), "length_score"),  # 2,500 of 5,000: S_l 50
        (sample(required=RequiredLength(2400, 2600)), None),
        (sample(required=RequiredLength(2700, 2700)), None),  # S_l 96
        (sample([*CLEAN_EN[:4], "I'm sorry, but I can't continue with this story. " + CLEAN_EN[4]]), "refusal"),
        (sample([*CLEAN_ZH[:4], "抱歉，我无法继续。" + CLEAN_ZH[4]], lang="zh"), "refusal"),
        (sample([*CLEAN_EN[:4], CLEAN_EN[4] + "\n\nWord Count: 500 words"]), "meta_text"),
        (sample([*CLEAN_EN[:4], "Paragraph 5 - the ending. " + CLEAN_EN[4]]), "meta_text"),
        (sample([*CLEAN_EN[:4], CLEAN_EN[4] + " As an AI, I find this topic fascinating."]), "meta_text"),
        (sample([*CLEAN_ZH[:4], "字数要求：500字。" + CLEAN_ZH[4]], lang="zh"), "meta_text"),
        (sample(["We need more data and better data. " * 80] * 1 + CLEAN_EN[:3]), "repetition"),
        (sample([CLEAN_EN[0]] * 5), "repetition"),
        (sample(CLEAN_EN, lang="zh"), "language_mismatch"),
        (sample(CLEAN_ZH, lang="en"), "language_mismatch"),
        (sample(planned=10000), "below_plan"),
        (sample([*CLEAN_EN[:4], CLEAN_EN[4] + "<|im_end|>\n<|im_start|>user\nThanks!"]), "template_leak"),
        (sample([CLEAN_EN[0] + " [/INST]", *CLEAN_EN[1:]]), "template_leak"),
        (sample([*CONCLUDED_EN[:3], *CLEAN_EN[3:]]), "premature_conclusion"),  # 3 of 4 non-final paragraphs
        (sample([*CONCLUDED_EN[:2], *CLEAN_EN[2:]]), None),  # 2 of 4: at the share, not above it
        (sample([*CLEAN_EN[:4], CONCLUDED_EN[4]]), None),  # the last paragraph is where a summary belongs
        (sample(CONCLUDED_ZH, lang="zh"), "premature_conclusion"),
        (sample(CONCLUDED_EN[:3], planned=1500), "too_short"),  # (3 paragraphs are never judged on this)
        # an essay may talk about AI; only the assistant's self-reference at a sentence start is meta text
        (sample([*CLEAN_EN[:4], CLEAN_EN[4] + " Many analysts retrain as an AI project manager within a year."]), None),
        (sample([*CLEAN_EN[:4], "As an AI ethicist, I have argued for audits. " + CLEAN_EN[4]]), None),
        (sample([*CLEAN_EN[:4], CLEAN_EN[4] + " However, as an AI language model, I cannot verify this."]), "meta_text"),
        (sample([*CLEAN_ZH[:4], "机器学习作为人工智能的一个重要分支，发展迅速。" + CLEAN_ZH[4]], lang="zh"), None),
        (sample([*CLEAN_ZH[:4], CLEAN_ZH[4] + "作为一个AI语言模型，我无法提供最新数据。"], lang="zh"), "meta_text"),
        (sample([*CLEAN_EN[:4], "I apologize to no one for loving this city. " + CLEAN_EN[4]]), None),
    ],
)
def test_each_filter_rejects_with_its_reason(case, reason):
    verdict = judge(case, FiltersConfig())
    assert verdict.reason == reason, verdict.detail
    assert verdict.status == ("accepted" if reason is None else "rejected")


def test_filters_can_be_switched_off():
    relaxed = FiltersConfig(min_length_score=None, reject_meta_text=False, check_language=False, min_plan_ratio=None,
                            max_premature_conclusion_share=None)
    for case in (sample(required=RequiredLength(5000, 5000)), sample(CLEAN_EN, lang="zh"), sample(planned=10000),
                 sample([*CLEAN_EN[:4], CLEAN_EN[4] + " Word Count: 9"]), sample(CONCLUDED_EN)):
        assert judge(case, relaxed).status == "accepted"


@pytest.mark.parametrize("text, low, high", [("a b c d e f g h i j " * 50, 0.9, 1.0), (CLEAN_EN[0], 0.0, 0.02)])
def test_repetition_ratio(text, low, high):
    assert low <= repetition_ratio(text, 8) <= high


BAD = {
    "Write a 2400-word essay about rivers. [[short]]": "too_short",
    "Write a 5000-word essay about oceans. [[words=2400]]": "length_score",
    "Write a 2400-word essay about lakes. [[meta]]": "meta_text",
    "Write a 2400-word essay about ponds. [[repeat]]": "repetition",
    "写一篇2400字的文章，介绍黄河。 [[english]]": "language_mismatch",
    "Write an essay about wells. [[words=30000]] [[short]]": "below_plan",
}
SAME = ["Write a 2400-word essay about harbours. [[same=h]]", "Write a 2400-word essay about docks. [[same=h]]"]


def test_a_build_with_bad_outputs_mixed_in_exports_none_of_them_and_reports_each_reason(tmp_path, server, capsys):
    good = [f"Write a 2400-word essay about {topic}." for topic in (
        "the long history of the city of Paris and the bridges over its river", "coral reefs in warming seas",
        "why medieval guilds mattered", "learning to play the violin as an adult")]
    near_copy = good[0].replace(".", ", please.")  # Jaccard 0.94 on 3-word shingles
    pool = write_pool(tmp_path / "pool.jsonl", [*BAD, *SAME, *good, near_copy])
    config = write_config(tmp_path, server.base_url, pool, target=20, engine={"max_jobs": 1},
                          generation={"max_paragraphs": 80}, filters={"near_duplicate_threshold": 0.8})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    records = {r["prompt"]: r for r in jobs(tmp_path / "run")}
    for prompt, reason in BAD.items():
        assert (records[prompt]["status"], records[prompt]["reason"]) == ("rejected", reason), records[prompt]["detail"]
    assert sorted(records[p]["status"] for p in SAME) == ["accepted", "rejected"]
    assert near_copy not in records  # skipped before generation as a near-duplicate instruction
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["reasons"]["rejected"] == {**{r: 1 for r in BAD.values()}, "near_duplicate_output": 1}
    assert report["skipped_instructions"] == {"near_duplicate_instruction": 1}
    for reason in [*BAD.values(), "near_duplicate_output"]:
        assert reason in out  # the table printed at the end
    exported = {row["messages"][0]["content"] for row in datasets.load_from_disk(str(tmp_path / "run" / "dataset"))["train"]}
    assert exported == {*good, next(p for p in SAME if records[p]["status"] == "accepted")}


def test_extend_short_lengthens_short_drafts_before_filtering(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", ["Write a 1200-word essay about rivers. [[short]]"])
    config = write_config(tmp_path, server.base_url, pool, target=1, filters={"min_words": 1000},
                          generation={"extend_short": True, "extend_max_paragraphs": 3})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    (record,) = jobs(tmp_path / "run")
    assert record["status"] == "accepted", record["detail"]
    assert record["paragraph_words"] == [400, 400, 400]
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert sorted(s["extends"] for s in steps if "extends" in s) == [1, 2, 3]
    assert record["usage"]["requests"] == 1 + 3 + 3


def test_llm_selector_asks_once_per_instruction_and_rejects_the_nos(tmp_path, server):
    prompts = ["Write a 1200-word essay about rivers.", "Write a 1200-word essay about lakes. [[notlong]]",
               "请写一篇1200字的文章，介绍长江。"]
    pool = write_pool(tmp_path / "pool.jsonl", prompts)
    config = write_config(tmp_path, server.base_url, pool, target=3, filters={"min_words": 1000},
                          pools={"sources": [{"path": str(pool)}], "llm_select": {}})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    records = {r["prompt"]: r for r in jobs(tmp_path / "run")}
    assert (records[prompts[1]]["status"], records[prompts[1]]["reason"]) == ("rejected", "llm_selector")
    assert records[prompts[0]]["status"] == records[prompts[2]]["status"] == "accepted"
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert sorted(s["text"] for s in steps if s["step"] == -1) == ["no", "yes", "是"]  # cached in the run dir
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["reasons"]["rejected"] == {"llm_selector": 1}
    requests = server.stats()["requests"]
    assert main(["build", "--config", str(config), "--no-progress"]) == 0  # a re-run asks nothing again
    assert server.stats()["requests"] == requests


@pytest.mark.parametrize(
    "required, reason",
    [
        (RequiredLength.at_least(1250), None),  # 2,500 words for "at least 1,250": 2x a floor complies
        (RequiredLength.at_most(4200), None),  # 2,500 words for "no more than 4,200": 0.6x a ceiling complies
        (RequiredLength.about(1250), "length_score"),  # 2x "about 1,250": S_l 66.7
        (RequiredLength.at_least(5000), "length_score"),  # half a floor
        (RequiredLength.at_most(1000), "length_score"),  # 2.5x a ceiling
    ],
)
def test_length_filter_accepts_what_a_floor_or_a_ceiling_allows(required, reason):
    verdict = judge(sample(required=required), FiltersConfig())
    assert verdict.reason == reason, verdict.detail


def test_a_build_keeps_compliant_answers_to_floors_and_ceilings_and_records_the_requirement(tmp_path, server):
    prompts = {
        "Write at least 1,200 words about rivers. [[words=2400]]": ("accepted", "at_least", 1200, 1200, None),
        "Write no more than 4,000 words about lakes. [[words=2400]]": ("accepted", "at_most", 4000, None, 4000),
        "写一篇关于黄河的文章，字数在2000至3000之间 [[words=2400]]": ("accepted", "range", 3000, 2000, 3000),
        "Write about 1,200 words about wells. [[words=2400]]": ("rejected", "about", 1200, 1200, 1200),
    }
    pool = write_pool(tmp_path / "pool.jsonl", list(prompts))
    config = write_config(tmp_path, server.base_url, pool, target=4, filters={"min_words": 1000, "check_language": False})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    for record in jobs(tmp_path / "run"):
        status, kind, target, low, high = prompts[record["prompt"]]
        assert record["status"] == status, record["detail"]
        assert record["required"] == {"kind": kind, "target": target, "low": low, "high": high}
        assert record["required_length"] == target


def test_junk_answers_are_retried_and_never_reach_the_data(tmp_path, server):
    """Error text, placeholders, deferrals, template turns and oversized answers sent with HTTP 200: each
    paragraph's first answer is junk, the step's second attempt is used, and the dataset holds no trace of them."""
    kinds = ("gateway", "busy", "json_error", "placeholder", "deferral", "template", "huge")
    prompts = [f"Write a 1200-word essay about harbour number {i}. [[junk={kind}]]" for i, kind in enumerate(kinds)]
    prompts += ["请写一篇1200字的文章，介绍长江。[[junk=zh_busy]]", "Write a 1200-word essay about docks. [[control]]"]
    pool = write_pool(tmp_path / "pool.jsonl", prompts)
    config = write_config(tmp_path, server.base_url, pool, target=len(prompts), filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    records = jobs(tmp_path / "run")
    assert [r["status"] for r in records] == ["accepted"] * len(prompts), [r.get("detail") for r in records]
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    attempts = {(s["seq"], s["step"]): s["attempts"] for s in steps if s["step"] > 0}
    junk_seqs = {r["seq"] for r in records if "junk=" in r["prompt"]}
    assert {a for (seq, _), a in attempts.items() if seq in junk_seqs} == {2}
    rows = datasets.load_from_disk(str(tmp_path / "run" / "dataset"))["train"]
    for row in rows:
        answer = row["messages"][1]["content"]
        for trace in ("error", "retry", "<|", "goes here", "next response", "稍后", "\x1b", "\x00", "\x07", "\x9b"):
            assert trace not in answer
        assert len(answer) < 20_000
