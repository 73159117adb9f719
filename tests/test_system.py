import pytest

from compoundai.contract import OutputContract, parse_json, snap_to_label
from compoundai.errors import UserInputError
from compoundai.lanes import lanes_for
from compoundai.system import CompoundSystem, DemoBank
from compoundai.task import load_task
from compoundai.testing import FakeGenerator, HashEmbedder
from tests.conftest import BANKING


def test_labels_are_chosen_by_score_not_free_text():
    gen = FakeGenerator(scores=lambda chat, label: {"b": -1.0}.get(label, -5.0))
    system = CompoundSystem("s", "prompt", "Classify.", OutputContract("labels", ["a", "b"]), gen)
    answer = system.invoke("anything")
    assert answer.output == "b"
    assert "a\nb" in gen.calls[0][0]["content"]  # the label list is in the contract


class NoScore:
    """A generator without `score` (like an HTTP backend): free text, snapped afterwards."""

    name = "noscore"

    def __init__(self, text):
        self.inner = FakeGenerator(default=text)

    def generate(self, prompts, config=None):
        return self.inner.generate(prompts, config)


def test_free_text_is_snapped_when_the_backend_cannot_score():
    labels = ["card_arrival", "card_linking"]
    system = CompoundSystem(
        "s", "prompt", "x", OutputContract("labels", labels), NoScore("The intent is card_linking.")
    )
    assert system.invoke("q").output == "card_linking"


def test_snap_and_parse_helpers():
    assert snap_to_label("'card_arrival'.", ["card", "card_arrival"]) == "card_arrival"
    assert snap_to_label("crad arival", ["card_arrival", "exchange_rate"]) == "card_arrival"
    assert parse_json('Sure: {"a": 1} done') == {"a": 1}
    assert parse_json("no json") is None


def test_few_shot_demos_are_nearest_examples_as_chat_turns():
    task = load_task(BANKING)
    bank = DemoBank(task.split("train")[:200], HashEmbedder())
    gen = FakeGenerator(default="card_arrival")
    system = CompoundSystem(
        "s", "prompt", "x", OutputContract("labels", task.labels), gen, demos=bank, shots=3
    )
    chat = system.prompts(["my card has not arrived yet"])[0]
    roles = [m["role"] for m in chat]
    assert roles == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert chat[-1]["content"] == "my card has not arrived yet"
    assert all(m["content"] in task.labels for m in chat if m["role"] == "assistant")
    # the closest demonstration sits right before the query
    sims = bank.vectors @ bank.embedder.embed(["my card has not arrived yet"])[0]
    assert chat[-3]["content"] == bank.examples[int(sims.argmax())].input


def test_lane_names(fake_ctx):
    assert [lane.name for lane in lanes_for(["prompt"])] == ["prompt/zero-shot", "prompt/5-shot"]
    with pytest.raises(UserInputError, match="unknown lane"):
        lanes_for(["magic"])
    assert [lane.name for lane in lanes_for(["compound"])] == ["compound"]


def test_stream_and_langchain_runnable_give_the_parsed_answer():
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.prompts import ChatPromptTemplate

    gen = FakeGenerator(lambda chat: "echo: " + chat[-1]["content"])
    system = CompoundSystem("s", "prompt", "Repeat.", OutputContract(), gen)
    assert list(system.stream("a b")) == ["echo:", " a", " b"]
    runnable = system.as_runnable()
    assert runnable.invoke("hi") == "echo: hi"
    assert runnable.invoke({"input": "hi"}) == "echo: hi"
    assert runnable.invoke([SystemMessage("x"), HumanMessage("yo")]) == "echo: yo"
    calls_before = len(gen.calls)
    assert runnable.batch(["1", "2", "3"]) == ["echo: 1", "echo: 2", "echo: 3"]
    assert len(gen.calls) == calls_before + 3
    chain = ChatPromptTemplate.from_messages([("human", "say {x}")]) | runnable | str.upper
    assert chain.invoke({"x": "cheese"}) == "ECHO: SAY CHEESE"
    assert "".join(runnable.stream("p q")) == "echo: p q"
    with pytest.raises(UserInputError, match="takes text"):
        runnable.invoke(42)
