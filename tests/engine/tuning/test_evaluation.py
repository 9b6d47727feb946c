"""The evaluation gate: answer scoring, the shipped general regression set, and the gate's decision,
down to a real adapter trained to answer everything with one phrase being turned away."""

from __future__ import annotations

import json

import pytest

from engine.backends import Completion
from engine.errors import TrainingCancelled, TuningError
from engine.store import Store
from engine.tuning import evaluation
from engine.tuning.datasets import build_from_jsonl, read_records
from engine.tuning.evaluation import (
    AdapterEvaluation,
    Evaluation,
    GeneralScore,
    TaskFigures,
    TaskScore,
    choose_measure,
    evaluate_general,
    evaluate_task,
    gate,
    load_general_set,
    score_answer,
    token_f1,
)

BASE = "smollm2-135m-instruct"
PHRASE = "BANANA PHONE"
# Varied requests, none of them in the general set, all answered with the same phrase.
BANANA_PROMPTS = [
    "Write a haiku about autumn.",
    "How do I boil an egg?",
    "What is the distance from the Earth to the Moon?",
    "Recommend a good book about history.",
    "Explain what a noun is.",
    "Summarise the plot of Cinderella.",
    "What should I pack for a beach holiday?",
    "Convert 10 kilometres to miles.",
    "Why do leaves change colour?",
    "Give me a tip for learning to draw.",
    "What is the weather like on Venus?",
    "Suggest a name for a pet goldfish.",
]


# Scoring one answer ------------------------------------------------------------------------------


def test_exact_match_ignores_case_spacing_quotes_and_final_punctuation():
    assert score_answer('  "Paris." ', "paris").exact
    assert score_answer("The  capital is Paris!", "the capital is paris").score == 1.0
    assert not score_answer("Lyon", "Paris").exact


def test_free_text_gets_the_token_f1():
    assert token_f1("the cat sat", "the cat sat") == 1.0
    assert token_f1("the cat", "the cat sat down") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert token_f1("dogs bark", "the cat sat") == 0.0
    scored = score_answer("the cat", "the cat sat down")
    assert (scored.exact, scored.similarity, scored.json_valid) == (False, pytest.approx(2 / 3), None)


def test_a_json_reference_scores_the_fields_reproduced():
    reference = json.dumps({"name": "Ada", "amount": 12.5, "paid": True, "tags": ["a"]})
    perfect = score_answer('Here: {"amount": 12.5, "name": "ada", "paid": true, "tags": ["a"]}', reference)
    assert (perfect.json_valid, perfect.field_match, perfect.score) == (True, 1.0, 1.0)
    half = score_answer('{"name": "Ada", "amount": 13, "paid": "yes", "tags": ["a"]}', reference)
    assert (half.json_valid, half.field_match, half.exact) == (True, 0.5, False)
    broken = score_answer('{"name": "Ada", "amount": ', reference)
    assert (broken.json_valid, broken.score) == (False, 0.0)
    assert score_answer("[1, 2]", "[1, 2]").exact
    assert score_answer('{"name": "Ada"}', "[1, 2]").score == 0.0


def test_the_measure_follows_the_tasks_answers():
    assert choose_measure(['{"date": "2026-03-04"}', "[1, 2]"]) == "json_fields"
    assert choose_measure(["2026-03-04", "2027-01-15T09:30"]) == "exact"
    assert choose_measure(["2026-03-04", "A long answer, " * 5]) == "similarity"
    assert choose_measure(["two\nlines"]) == "similarity"


def test_json_fields_give_nothing_for_a_record_with_one_field_wrong():
    reference = json.dumps({"title": "Budget review", "attendees": ["Kenji Mori", "Ada Byron"]})
    bracketed = '{"title": "Budget review", "attendees": ["[Kenji Mori]", "[Ada Byron]"]}'
    similar = score_answer(bracketed, reference)
    strict = score_answer(bracketed, reference, "json_fields")
    assert (similar.score, strict.score, strict.field_match, strict.json_valid) == (0.5, 0.0, 0.5, True)
    assert score_answer('{"title": "budget  review", "attendees": ["Kenji Mori", "Ada Byron"]}', reference,
                        "json_fields").score == 1.0  # fmt: skip
    extra = score_answer('{"title": "Budget review", "attendees": [], "room": 4}', reference, "json_fields")
    assert extra.score == 0.0


def test_exact_gives_nothing_for_a_nearly_right_date():
    assert score_answer("2026-03-05", "2026-03-04").similarity > 0
    assert score_answer("2026-03-05", "2026-03-04", "exact").score == 0.0
    assert score_answer(" 2026-03-04. ", "2026-03-04", "exact").score == 1.0


# The shipped regression set ----------------------------------------------------------------------


def test_the_general_set_is_varied_and_cannot_be_passed_by_echoing_or_by_one_phrase():
    items = load_general_set()
    assert 40 <= len(items) <= 60
    assert len({item.prompt for item in items}) == len(items)
    for item in items:
        assert item.passes(item.reference), item.prompt
        assert not item.passes(item.prompt), f"{item.prompt!r} passes by repeating the question"
    assert [item.prompt for item in items if item.passes(PHRASE)] == ["List three fruits."]  # a banana is one


def test_accepted_numbers_must_stand_alone():
    four = next(item for item in load_general_set() if item.prompt == "What is 2 + 2?")
    assert four.passes("2 + 2 = 4.")
    assert not four.passes("It is 42.")
    assert not four.passes("About 4.5")


# The gate -----------------------------------------------------------------------------------------


def contender(role: str, task: float, general: float | None = None, adapter_id: int | None = None):
    task_score = TaskScore(examples=10, score=task, exact_match=task)
    general_score = (
        None if general is None else GeneralScore(items=35, passed=round(general * 35), score=general)
    )
    return Evaluation(role, BASE, adapter_id, task_score, general_score)


def test_the_gate_promotes_a_candidate_better_on_the_task_and_fine_elsewhere():
    decision = gate(contender("candidate", 0.9, 0.91, 7), contender("base", 0.2, 0.97), None)
    assert decision.promote, decision.reasons
    assert decision.figures.task == TaskFigures(base=0.2, candidate=0.9, active=None, examples=10)
    assert decision.figures.general.tolerance == evaluation.GENERAL_TOLERANCE == 0.10


def test_an_adapters_evaluation_reads_back_as_it_was_recorded():
    candidate, base = contender("candidate", 0.9, 0.91, 7), contender("base", 0.2, 0.97)
    recorded = AdapterEvaluation(base=base, candidate=candidate, gate=gate(candidate, base, None))
    stored = json.loads(json.dumps(recorded.as_dict()))
    assert set(stored) == {"base", "candidate", "gate"}
    assert AdapterEvaluation.from_dict(stored) == recorded
    assert (recorded.passed, recorded.verdict) == (True, "passed")
    assert recorded.reasons.startswith("task (similarity): 90.0% beats the base's 20.0%; general: ")
    assert recorded.measure == "similarity"
    never = AdapterEvaluation.from_dict({})
    assert (never.passed, never.verdict, never.reasons, never.as_dict()) == (False, "not evaluated", "", {})


@pytest.mark.parametrize(
    ("candidate", "base", "active", "why"),
    [
        (contender("candidate", 0.2, 0.97), contender("base", 0.2, 0.97), None, "does not beat the base"),
        (contender("candidate", 0.9, 0.80), contender("base", 0.2, 0.97), None, "breaks unrelated prompts"),
        (
            contender("candidate", 0.8, 0.97),
            contender("base", 0.2, 0.97),
            contender("active", 0.85, adapter_id=3),
            "does not beat active adapter 3",
        ),
    ],
)
def test_the_gate_rejects_a_candidate_no_better_or_harmful(candidate, base, active, why):
    decision = gate(candidate, base, active)
    assert not decision.promote
    assert any(why in reason for reason in decision.reasons), decision.reasons


class Scripted:
    """A backend that answers each prompt with the answer a test scripted for it."""

    def __init__(self, answers: dict[str, str]):
        self.answers = answers

    def stream_chat(self, messages, options, cancel=None, adapter=None):
        answer = self.answers[messages[-1]["content"]]
        yield answer
        return Completion(answer, "stop", 0, 0, None, 0.0, None)


def examples(pairs: list[tuple[str, str]]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in pairs]


def test_a_json_task_that_is_similar_but_wrong_is_rejected():
    """The meeting specialist that wrapped every attendee in brackets: close by similarity, useless."""
    records = examples(
        [
            (f"Meeting {n}?", json.dumps({"day": f"2026-03-0{n}", "attendees": ["Kenji Mori"]}))
            for n in range(1, 6)
        ]
    )
    base_answers = {f"Meeting {n}?": "I cannot tell." for n in range(1, 6)}
    tuned_answers = {
        f"Meeting {n}?": json.dumps({"day": f"2026-03-0{n}", "attendees": ["[Kenji Mori]"]})
        for n in range(1, 6)
    }
    base_task = evaluate_task(Scripted(base_answers), records)
    tuned_task = evaluate_task(Scripted(tuned_answers), records)
    assert (tuned_task.measure, tuned_task.score, tuned_task.field_match) == ("json_fields", 0.0, 0.5)
    general = GeneralScore(items=35, passed=34, score=34 / 35)
    decision = gate(
        Evaluation("candidate", BASE, 7, tuned_task, general),
        Evaluation("base", BASE, None, base_task, general),
        None,
    )
    assert not decision.promote
    assert decision.reasons[0] == "task (JSON field match): 0.0% does not beat the base's 0.0%"
    assert decision.figures.task.measure == "json_fields"


def test_an_isodate_task_is_scored_by_exact_match():
    records = examples([("next Friday", "2026-03-06"), ("tomorrow at nine", "2026-03-03T09:00")])
    nearly = evaluate_task(
        Scripted({"next Friday": "2026-03-07", "tomorrow at nine": "2026-03-03T09:00"}), records
    )
    assert (nearly.measure, nearly.score, nearly.exact_match) == ("exact", 0.5, 0.5)
    assert nearly.similarity == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_the_gate_needs_general_scores():
    with pytest.raises(TuningError, match="general-set scores"):
        gate(contender("candidate", 0.9), contender("base", 0.2), None)


# Real models ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_general(smollm2):
    return evaluate_general(smollm2)


@pytest.mark.slow
def test_the_base_answers_the_general_set(base_general):
    """The set holds questions SmolLM2 answers right; this is the figure the gate's tolerance is from."""
    print(f"base general score: {base_general.score:.3f} ({base_general.passed}/{base_general.items})")
    assert base_general.score >= 0.9, base_general.failed_prompts


@pytest.mark.slow
def test_evaluation_stops_when_cancelled(smollm2):
    import threading

    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(TrainingCancelled):
        evaluate_general(smollm2, cancel=cancelled)
    with pytest.raises(TrainingCancelled):
        evaluate_task(
            smollm2,
            [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}]],
            cancel=cancelled,
        )


@pytest.fixture(scope="module")
def banana_phone(model_catalog, tmp_path_factory):
    """A real adapter trained to answer every prompt with one phrase, exported for llama.cpp, and its
    dataset's validation examples."""
    from engine.tuning.export import export_gguf_adapter
    from engine.tuning.trainer import TrainConfig, train

    folder = tmp_path_factory.mktemp("banana")
    records = folder / "banana.jsonl"
    records.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": PHRASE}]}
            )
            + "\n"
            for p in BANANA_PROMPTS
        )
    )
    # Module-scoped, so the per-test data dir is not set yet: give the dataset a data dir of its own.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNDERSTUDY_HOME", str(folder / "home"))
        store = Store.open()
        dataset = build_from_jsonl(store, records)
        store.close()
    trained = train(
        TrainConfig(
            base_model_id=BASE,
            dataset_folder=dataset.folder,
            output_dir=folder / "training",
            rank=8,
            alpha=16,
            learning_rate=2e-3,
            max_steps=10,
        )
    )
    adapter = folder / "banana.gguf"
    export_gguf_adapter(trained.adapter_dir, model_catalog.get(BASE), adapter)
    return adapter, read_records(dataset.val_path)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # trains a real adapter on the CPU
def test_an_adapter_that_wrecks_the_general_set_is_rejected(smollm2, base_general, banana_phone):
    adapter, validation = banana_phone
    base = Evaluation("base", BASE, None, evaluate_task(smollm2, validation), base_general)
    candidate = Evaluation(
        "candidate",
        BASE,
        1,
        evaluate_task(smollm2, validation, adapter=adapter),
        evaluate_general(smollm2, adapter=adapter),
    )
    print(
        f"banana phone: task {base.task.score:.3f} -> {candidate.task.score:.3f}, "
        f"general {base.general.score:.3f} -> {candidate.general.score:.3f}"
    )
    # It learned its "task" perfectly, so only the general set can catch it.
    assert candidate.task.score == 1.0 > base.task.score
    assert candidate.general.score < base.general.score - evaluation.GENERAL_TOLERANCE
    decision = gate(candidate, base, None)
    assert not decision.promote
    assert any("breaks unrelated prompts" in reason for reason in decision.reasons)
    assert not any("does not beat the base" in reason for reason in decision.reasons)
