"""The finetune lane on the tiny random Llama: real training, real adapters, no fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai.lanes import FinetuneLane, lanes_for
from compoundai.task import load_task
from tests.adapters.conftest import LABELS, make_task, task_without_training_rows, write_jsonl


def test_builds_trains_and_answers_with_a_label(tmp_path, tiny_model_dir, sft_rows, ctx):
    task = load_task(make_task(tmp_path, tiny_model_dir, sft_rows))
    system = FinetuneLane().build(task, ctx)

    adapter = Path(system.info.adapter)
    assert (adapter / "adapter_model.safetensors").is_file()
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["stage"] == "sft" and manifest["examples"] == len(sft_rows)
    assert manifest["metrics"]["final_loss"] < manifest["metrics"]["first_loss"]
    assert system.info.forgetting.perplexity_before > 0
    # the adapter learnt the contract: its prompt is the instructions alone, as in training
    chat = system.prompts(["my card has not arrived 3"])[0]
    assert chat[0] == {"role": "system", "content": "Name the intent."}
    answer = system.invoke("my card has not arrived 3")
    assert answer.output in LABELS and "logprob" in answer.extra


def test_second_build_reuses_the_adapter(tmp_path, tiny_model_dir, sft_rows, ctx):
    task = load_task(make_task(tmp_path, tiny_model_dir, sft_rows))
    first = FinetuneLane().build(task, ctx)
    stamp = (Path(first.info.adapter) / "adapter_model.safetensors").stat().st_mtime_ns
    second = FinetuneLane().build(task, ctx)
    assert second.info.adapter == first.info.adapter
    assert second.info.fingerprint == first.info.fingerprint
    assert (Path(second.info.adapter) / "adapter_model.safetensors").stat().st_mtime_ns == stamp


def test_changed_data_trains_a_new_adapter(tmp_path, tiny_model_dir, sft_rows, ctx):
    first = FinetuneLane().build(load_task(make_task(tmp_path, tiny_model_dir, sft_rows)), ctx)
    other = tmp_path / "other"
    other.mkdir()
    task = load_task(make_task(other, tiny_model_dir, sft_rows[:-3]))
    second = FinetuneLane().build(task, ctx)
    assert second.info.fingerprint != first.info.fingerprint


def test_sft_then_dpo_on_preference_pairs(tmp_path, tiny_model_dir, sft_rows, ctx):
    pairs = [
        {"prompt": "what is the exchange rate", "chosen": "exchange_rate", "rejected": "top_up"}
    ] * 8
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    path = make_task(tmp_path, tiny_model_dir, sft_rows, preferences={"train": "pairs.jsonl"})
    task = load_task(path)
    lanes = lanes_for(["finetune"], task)
    assert [lane.name for lane in lanes] == ["finetune/sft", "finetune/sft+dpo"]
    system = lanes[1].build(task, ctx)
    manifest = json.loads((Path(system.info.adapter) / "manifest.json").read_text())
    assert manifest["stage"] == "dpo"
    assert Path(system.info.base_model).name == "sft-merged"
    assert system.invoke("what is the exchange rate").output in LABELS
    # the served model is the DPO one: it prefers the chosen answer more than SFT alone did
    sft = lanes[0].build(task, ctx)

    def margin(lane_system) -> float:
        chat = lane_system.prompts(["what is the exchange rate"])[0]
        chosen, rejected = lane_system.generator.score(chat, ["exchange_rate", "top_up"])
        return chosen - rejected

    assert margin(system) > margin(sft) + 0.01


def test_missing_training_examples_is_a_clear_error(tmp_path, tiny_model_dir, ctx):
    task = load_task(task_without_training_rows(tmp_path, tiny_model_dir))
    with pytest.raises(UserInputError, match="needs training examples") as err:
        FinetuneLane().build(task, ctx)
    assert "examples.train" in str(err.value.hint)


def test_dpo_without_pairs_is_a_clear_error(tmp_path, tiny_model_dir, sft_rows, ctx):
    task = load_task(make_task(tmp_path, tiny_model_dir, sft_rows))
    with pytest.raises(UserInputError, match="preference pairs"):
        FinetuneLane(("sft", "dpo")).build(task, ctx)


def test_a_trained_adapter_is_used_without_training(tmp_path, tiny_model_dir, sft_rows, ctx):
    trained = FinetuneLane().build(load_task(make_task(tmp_path, tiny_model_dir, sft_rows)), ctx)
    other = tmp_path / "given"
    other.mkdir()
    path = make_task(other, tiny_model_dir, sft_rows, finetune={"adapter": trained.info.adapter})
    fresh = RunContext(cache_dir=tmp_path / "fresh-cache", progress=False)
    system = FinetuneLane().build(load_task(path), fresh)
    assert system.info.adapter == trained.info.adapter
    assert not (tmp_path / "fresh-cache" / "adapters").exists()  # nothing trained
    text = "my card has not arrived 3"
    assert system.invoke(text).output == trained.invoke(text).output


def test_a_missing_adapter_is_a_clear_error(tmp_path, tiny_model_dir, sft_rows, ctx):
    path = make_task(tmp_path, tiny_model_dir, sft_rows, finetune={"adapter": "nowhere"})
    with pytest.raises(UserInputError, match=r"no adapter_model\.safetensors"):
        FinetuneLane().build(load_task(path), ctx)


def test_pretrain_then_sft_on_the_documents(tmp_path, tiny_model_dir, sft_rows, ctx):
    docs = [
        {"doc_id": f"d{i}", "text": f"Card payments settle in {i} days. " * 6} for i in range(8)
    ]
    write_jsonl(tmp_path / "docs.jsonl", docs)
    task = load_task(make_task(tmp_path, tiny_model_dir, sft_rows, documents=["docs.jsonl"]))
    lanes = lanes_for(["finetune"], task)
    assert [lane.name for lane in lanes] == ["finetune/sft", "finetune/pretrain+sft"]
    system = lanes[1].build(task, ctx)
    adapter = Path(system.info.adapter)
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["stage"] == "sft"
    # SFT trained on (and is served over) the base with the pretrain adapter merged in
    assert Path(system.info.base_model).name == "merged"
    pretrain_dir = Path(system.info.base_model).parent
    first = json.loads((pretrain_dir / "adapter" / "manifest.json").read_text())
    assert first["stage"] == "pretrain"
    assert first["metrics"]["final_loss"] < first["metrics"]["first_loss"]
    # forgetting runs from the original base, before the pretrain stage
    forgetting = system.info.forgetting
    assert forgetting.perplexity_before == first["metrics"]["forgetting"]["perplexity_before"]
    assert forgetting.perplexity_after == manifest["metrics"]["forgetting"]["perplexity_after"]
    # and its cost counts both stages' training
    both = first["metrics"]["train_seconds"] + manifest["metrics"]["train_seconds"]
    assert system.info.training.train_seconds == pytest.approx(both, abs=0.1)
    assert system.invoke("my card has not arrived 3").output in LABELS
    # a second build reuses both stages
    again = FinetuneLane(("pretrain", "sft")).build(task, ctx)
    assert again.info.adapter == system.info.adapter


def test_pretrain_without_documents_is_a_clear_error(tmp_path, tiny_model_dir, sft_rows, ctx):
    task = load_task(make_task(tmp_path, tiny_model_dir, sft_rows))
    assert "finetune/pretrain+sft" not in [lane.name for lane in lanes_for(["finetune"], task)]
    with pytest.raises(UserInputError, match="documents"):
        FinetuneLane(("pretrain", "sft")).build(task, ctx)
    with pytest.raises(UserInputError, match="must be one of"):
        FinetuneLane(("dpo",))


def test_qa_then_sft_trains_first_on_pairs_synthesised_from_the_documents(
    tmp_path, tiny_model_dir, sft_rows, ctx
):
    from compoundai.testing import FakeGenerator, HashEmbedder

    docs = [{"doc_id": f"d{i}", "text": f"Card payments settle in {i} days."} for i in range(6)]
    write_jsonl(tmp_path / "docs.jsonl", docs)
    task = load_task(make_task(tmp_path, tiny_model_dir, sft_rows, documents=["docs.jsonl"]))

    def writer(chat):  # a question about the chunk, with the answer copied from it
        days = chat[-1]["content"].split("settle in ")[1].split(" ")[0]
        return f"Q: How many days do card payments take to settle ({days})?\nA: {days} days"

    ctx.clients["generator"] = FakeGenerator(writer)
    ctx.clients["embedder"] = HashEmbedder()
    system = FinetuneLane(("qa", "sft")).build(task, ctx)
    run_dir = Path(system.info.base_model).parent
    assert run_dir.name.startswith("tiny-intents-qa-")
    text = [json.loads(line)["text"] for line in (run_dir / "qa.jsonl").read_text().splitlines()]
    # without a dev split, the synthetic dev pairs (one in 4, by id) are not trained on
    from compoundai.synth import is_synthetic_dev

    pairs = [json.loads(line) for line in (run_dir / "pairs.jsonl").read_text().splitlines()]
    kept = [p for p in pairs if not is_synthetic_dev(p["id"])]
    assert len(pairs) == 6 and 0 < len(text) == len(kept)  # ids hash the tmp path: any count
    assert text[0].startswith("Question: How many days")
    first = json.loads((run_dir / "adapter" / "manifest.json").read_text())
    assert first["stage"] == "pretrain" and first["config"]["train_files"] == [
        str(run_dir / "qa.jsonl")
    ]
    # the filter counts travel with the system (and so into the report), and writing the
    # pairs counts as training time
    assert system.info.synth["kept"] == 6 and system.info.synth["acceptance_rate"] == 1.0
    assert system.info.training.train_seconds >= system.info.synth["seconds"]
    assert system.invoke("my card has not arrived 3").output in LABELS


def test_qa_then_sft_with_no_pair_kept_says_so(tmp_path, tiny_model_dir, sft_rows, ctx):
    from compoundai.errors import RunTimeFailure
    from compoundai.testing import FakeGenerator, HashEmbedder

    write_jsonl(tmp_path / "docs.jsonl", [{"doc_id": "d", "text": "Payments settle in 2 days."}])
    task = load_task(make_task(tmp_path, tiny_model_dir, sft_rows, documents=["docs.jsonl"]))
    ctx.clients["generator"] = FakeGenerator(default="Q: What colour is the sky?\nA: blue")
    ctx.clients["embedder"] = HashEmbedder()
    with pytest.raises(RunTimeFailure, match="no synthesised question/answer pair") as err:
        FinetuneLane(("qa", "sft")).build(task, ctx)
    assert "'unsupported': 1" in str(err.value)


def test_distill_trains_on_the_teachers_answers_not_the_gold(
    tmp_path, tiny_model_dir, sft_rows, ctx
):
    from compoundai.testing import FakeGenerator

    path = make_task(
        tmp_path, tiny_model_dir, sft_rows, finetune={
            "epochs": 2, "tokens_per_batch": 128, "learning_rate": 5e-3,
            "distill": {"teacher_base_url": "http://127.0.0.1:9/v1"},
        },
    )  # fmt: skip
    task = load_task(path)
    assert [lane.name for lane in lanes_for(["finetune"], task)][-1] == "finetune/distill"
    # a teacher that says top_up to everything, and once something that is no label at all
    teacher = FakeGenerator(lambda chat: "no idea" if "3" in chat[-1]["content"] else "top_up")
    ctx.clients["teacher"] = teacher
    system = FinetuneLane(("distill",)).build(task, ctx)
    assert "Name the intent." in teacher.calls[0][0]["content"]
    assert "top_up" in teacher.calls[0][0]["content"]  # the contract lists the labels
    train = json.loads(
        (Path(system.info.adapter).parent / "train.jsonl").read_text().split("\n")[0]
    )
    assert train["completion"] == "top_up"
    dropped = sum("3" in r["text"] for r in sft_rows)
    assert system.info.train_rows == len(sft_rows) - dropped
    assert system.info.teacher.endswith(
        f"({len(sft_rows) - dropped} of {len(sft_rows)} answers kept)"
    )
    # the teacher's answers are cached: a second build asks it nothing
    calls = len(teacher.calls)
    FinetuneLane(("distill",)).build(task, ctx)
    assert len(teacher.calls) == calls


def test_distill_without_a_teacher_is_a_clear_error(tmp_path, tiny_model_dir, sft_rows, ctx):
    task = load_task(make_task(tmp_path, tiny_model_dir, sft_rows))
    assert "finetune/distill" not in [lane.name for lane in lanes_for(["finetune"], task)]
    with pytest.raises(UserInputError, match="needs a teacher") as err:
        FinetuneLane(("distill",)).build(task, ctx)
    assert "teacher_base_url" in str(err.value.hint)
    with pytest.raises(UserInputError, match="not both"):
        load_task(make_task(tmp_path, tiny_model_dir, sft_rows, finetune={"distill": {
            "teacher_base_url": "http://x", "teacher_lane": "compound"}}))  # fmt: skip


def test_sft_then_grpo_rewarded_by_the_tasks_metric(tmp_path, tiny_model_dir, sft_rows, ctx):
    path = make_task(
        tmp_path, tiny_model_dir, sft_rows,
        output={"type": "free_text", "max_answer_tokens": 8},
        finetune={"epochs": 1, "tokens_per_batch": 128, "learning_rate": 5e-3,
                  "grpo": {"enabled": True, "max_steps": 2, "group_size": 2, "max_rows": 6,
                           "learning_rate": 1e-2, "eval_every": 1, "eval_prompts": 2}},
    )  # fmt: skip
    spec = yaml.safe_load(path.read_text())
    write_jsonl(tmp_path / "dev.jsonl", sft_rows[-3:])
    spec["examples"]["dev"] = "dev.jsonl"
    path.write_text(yaml.safe_dump(spec))
    task = load_task(path)
    lanes = lanes_for(["finetune"], task)
    assert "finetune/sft+grpo" in [lane.name for lane in lanes]
    system = FinetuneLane(("sft", "grpo")).build(task, ctx)
    adapter = Path(system.info.adapter)
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["stage"] == "grpo" and manifest["metrics"]["steps"] == 2
    assert manifest["config"]["metrics"] == [task.metrics[0]]
    # GRPO ran on (and is served over) the SFT model merged into the base
    assert Path(system.info.base_model).name == "sft-merged"
    prompts = (adapter.parent / "prompts.jsonl").read_text().splitlines()
    assert len(prompts) == 6 and set(json.loads(prompts[0])) == {"prompt", "reference"}
    # the guard's held-out signal: the reward on 2 dev inputs, every step
    assert len((adapter.parent / "dev.jsonl").read_text().splitlines()) == 2
    assert [h for h in manifest["guard"]["heldout"] if h is not None]
    assert system.info.stages == ["sft", "grpo"]
    # forgetting chained back to the original base: before SFT, after GRPO
    assert system.info.forgetting is not None and system.info.forgetting.chained_from
    assert isinstance(system.invoke("how do I top up 5").output, str)


def test_sft_then_rlhf_trains_a_reward_model_and_tunes_against_it(
    tmp_path, tiny_model_dir, sft_rows, ctx
):
    pairs = [{"prompt": f"card {i}", "chosen": "card arrival", "rejected": "fox"} for i in range(8)]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    path = make_task(
        tmp_path, tiny_model_dir, sft_rows, preferences={"train": "pairs.jsonl"},
        output={"type": "free_text", "max_answer_tokens": 8},
        finetune={"epochs": 1, "tokens_per_batch": 128, "learning_rate": 5e-3,
                  "rlhf": {"enabled": True, "reward_steps": 2, "max_steps": 2, "group_size": 2,
                           "pairs_per_step": 2, "learning_rate": 1e-2}},
    )  # fmt: skip
    task = load_task(path)
    assert "finetune/sft+rlhf" in [lane.name for lane in lanes_for(["finetune"], task)]
    system = FinetuneLane(("sft", "rlhf")).build(task, ctx)
    adapter = Path(system.info.adapter)
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["stage"] == "rloo" and manifest["metrics"]["steps"] == 2
    reward_dir = Path(manifest["config"]["reward_model"])
    assert json.loads((reward_dir / "manifest.json").read_text())["stage"] == "reward"
    assert Path(system.info.base_model).name == "sft-merged"
    assert manifest["guard"]["heldout_name"].startswith("f1 of the sampled answers")
    assert system.info.stages == ["sft", "rlhf"]
    assert system.info.forgetting is not None and system.info.forgetting.chained_from
    assert isinstance(system.invoke("card 3").output, str)
    # enabling RLHF does not retrain the SFT adapter the plain lane uses
    folders = set((ctx.cache_dir / "adapters").iterdir())
    FinetuneLane(("sft",)).build(task, ctx)
    assert set((ctx.cache_dir / "adapters").iterdir()) == folders
