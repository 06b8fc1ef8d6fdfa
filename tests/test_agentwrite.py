"""AgentWrite on its own: plan, then write in order, through a stub `send` (no server, no run directory); and the
store-backed `ask` below it that replays completed steps."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import replace

import pytest

from longwriter_data.backends.dummy import DummyBackend
from longwriter_data.backends.openai_http import ChatRequest, Completion, request_key
from longwriter_data.config import GenerationConfig, LlmSelect
from longwriter_data.generate.agentwrite import AgentWrite, JobFailed, NotSelected, _checked
from longwriter_data.generate.attempts import StepFailed, ask
from longwriter_data.generate.replay import Steps
from longwriter_data.pools.instructions import Instruction

PLAN = "Paragraph 1 - Main Point: Dawn - Word Count: 300 words\nParagraph 2 - Main Point: Dusk - Word Count: 400 words"
INSTRUCTION = Instruction(seq=0, id="a", prompt="Write about a day at the harbour.", lang="en")


class StubSend:
    """Answers by what a prompt asks for; records every request it was sent."""

    def __init__(self, answers: dict[str, list[str]] | None = None, finish_reason: str = "stop"):
        self.answers = answers or {}
        self.finish_reason = finish_reason
        self.requests: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        for marker, queue in self.answers.items():
            if marker in request.prompt and queue:
                return Completion(text=queue.pop(0), finish_reason=self.finish_reason, prompt_tokens=7)
        if "Paragraph 1 - Main Point: Dawn" not in request.prompt:
            return Completion(text=PLAN, finish_reason="stop", prompt_tokens=5)
        return Completion(text=f"Written text number {len(self.requests)}.", finish_reason=self.finish_reason)


def run(agent: AgentWrite, ask) -> object:
    return asyncio.run(agent.run(INSTRUCTION, ask))


def test_agentwrite_plans_then_writes_each_paragraph_in_order_with_the_text_so_far():
    send = StubSend()
    result = run(AgentWrite(GenerationConfig(), "m"), Steps(send, attempts=3))
    assert [s.words for s in result.plan.steps] == [300, 400]
    assert result.paragraphs == ["Written text number 2.", "Written text number 3."]
    assert [r.step for r in result.steps] == [0, 1, 2]
    assert "Written text number 2." in send.requests[2].prompt  # paragraph 2 sees paragraph 1
    assert "Written text number 2." not in send.requests[1].prompt


def test_a_plan_that_does_not_parse_is_asked_again_and_a_step_out_of_attempts_fails_the_job():
    send = StubSend({"Word Count": ["no plan here", PLAN]})
    result = run(AgentWrite(GenerationConfig(), "m"), Steps(send, attempts=3))
    assert result.steps[0].attempts == 2 and len(send.requests) == 4
    with pytest.raises(JobFailed, match="plan: .* after 2 attempts") as failed:
        run(AgentWrite(GenerationConfig(), "m"), Steps(StubSend({"Word Count": ["x", "y"]}), attempts=2))
    assert failed.value.reason == "plan_failed"


def test_the_llm_selector_rejects_an_instruction_it_answers_no_to():
    agent = AgentWrite(GenerationConfig(), "m", selector=LlmSelect(model="judge"))
    send = StubSend({"long": ["No."]})
    with pytest.raises(NotSelected):
        run(agent, Steps(send, attempts=3))
    assert [r.model for r in send.requests] == ["judge"]


def test_a_resumed_job_replays_its_stored_steps_and_pays_only_for_the_rest():
    saved: list = []

    async def save(record) -> None:
        saved.append(record)

    first = StubSend()
    run(AgentWrite(GenerationConfig(), "m"), Steps(first, attempts=3, save=save))
    stored = {r.step: r for r in saved[:2]}  # killed before paragraph 2 was stored
    again = StubSend()
    result = run(AgentWrite(GenerationConfig(), "m"), Steps(again, attempts=3, stored=stored, save=save))
    assert len(again.requests) == 1 and again.requests[0].prompt == first.requests[2].prompt
    assert result.paragraphs[0] == "Written text number 2."  # the stored answer, not a new one
    assert result.steps[0].prompt_tokens == 5  # usage of a replayed step as it was paid


def test_a_stored_step_whose_prompt_changed_is_asked_again():
    saved: list = []

    async def save(record) -> None:
        saved.append(record)

    run(AgentWrite(GenerationConfig(), "m"), Steps(StubSend(), attempts=3, save=save))
    stored = {r.step: r for r in saved}
    stored[1] = replace(stored[1], key=request_key(ChatRequest("m", "some other prompt", 100, 0.7)))
    again = StubSend()
    run(AgentWrite(GenerationConfig(), "m"), Steps(again, attempts=3, stored=stored))
    assert len(again.requests) == 2  # paragraph 1 anew, and paragraph 2 whose prompt holds it


REQUEST = ChatRequest(model="m", prompt="same prompt", max_tokens=100, temperature=0.7,
                      json_schema={"type": "object", "required": ["a"]}, extra_body={"top_p": 0.9, "seed": 1})


@pytest.mark.parametrize("change", [
    {"model": "other"}, {"prompt": "same prompt!"}, {"max_tokens": 101}, {"temperature": 0.9},
    {"json_schema": None}, {"json_schema": {"type": "object", "required": ["b"]}},
    {"extra_body": {}}, {"extra_body": {"top_p": 0.8, "seed": 1}},
])
def test_a_request_key_changes_with_every_part_of_the_payload(change):
    assert request_key(replace(REQUEST, **change)) != request_key(REQUEST)


def test_a_request_key_is_canonical_and_salted_by_the_sample():
    same = replace(REQUEST, temperature=0.7, json_schema={"required": ["a"], "type": "object"},
                   extra_body={"seed": 1, "top_p": 0.9})  # other key order: the same request
    assert request_key(same) == request_key(REQUEST) == request_key(REQUEST, 0)
    assert request_key(replace(REQUEST, temperature=1)) == request_key(replace(REQUEST, temperature=1.0))
    assert len({request_key(REQUEST, sample) for sample in range(4)}) == 4


@pytest.mark.parametrize("generation, model, paid", [
    (GenerationConfig(temperature=0.9), "m", [0, 1, 2]), (GenerationConfig(), "other", [0, 1, 2]),
    (GenerationConfig(extra_body={"top_p": 0.5}), "m", [0, 1, 2]),
    (GenerationConfig(paragraph_max_tokens=2000), "m", [1, 2]),  # the plan's request is unchanged
])
def test_stored_steps_whose_request_changed_are_asked_again_and_only_those(generation, model, paid):
    saved: list = []

    async def save(record) -> None:
        saved.append(record)

    run(AgentWrite(GenerationConfig(), "m"), Steps(StubSend(), attempts=3, save=save))
    stored = {r.step: r for r in saved}
    same = StubSend()
    run(AgentWrite(GenerationConfig(), "m"), Steps(same, attempts=3, stored=stored))
    assert same.requests == []  # the same settings: every step replayed
    again = StubSend()
    result = run(AgentWrite(generation, model), Steps(again, attempts=3, stored=stored))
    assert len(again.requests) == len(paid)
    assert [step.step for step in result.steps if step.key != stored[step.step].key] == paid


def test_a_cut_off_paragraph_is_trimmed_to_its_last_sentence_when_the_recipe_says_trim():
    agent = AgentWrite(GenerationConfig(paragraph_cutoff="trim"), "m")
    result = run(agent, Steps(StubSend(finish_reason="length"), attempts=1))
    assert [r.finish_reason for r in result.steps] == ["stop", "trimmed", "trimmed"]
    with pytest.raises(JobFailed, match="paragraph 1"):  # without trim, a cut-off paragraph is a bad answer
        run(AgentWrite(GenerationConfig(), "m"), Steps(StubSend(finish_reason="length"), attempts=1))


PARAGRAPH_REQUEST = ChatRequest(model="m", prompt="Write.", max_tokens=100, temperature=0.7)


def test_a_cut_off_paragraph_is_trimmed_to_its_last_sentence_when_asked():
    cut = Completion("One sentence. Another one that stops", "length", completion_tokens=100)
    answer = asyncio.run(ask(DummyBackend.in_turn(cut).send, PARAGRAPH_REQUEST, 1, functools.partial(_checked, trim=True)))
    assert (answer.completion.text, answer.completion.finish_reason) == ("One sentence.", "trimmed")
    with pytest.raises(StepFailed, match="over the"):  # a paragraph's size is bounded by its request's max_tokens
        asyncio.run(ask(DummyBackend.in_turn(Completion("word " * 5000, "stop")).send, PARAGRAPH_REQUEST, 1, _checked))
