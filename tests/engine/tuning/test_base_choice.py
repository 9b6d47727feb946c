"""Choosing a task's base model: every installed, tunable chat model that fits is scored zero-shot on
the task's validation examples and the best one wins; --base overrides after checking it can be tuned."""

from __future__ import annotations

import pytest

from engine.errors import CatalogError, TuningError
from engine.tuning.base_choice import candidate_bases, choose_base
from engine.tuning.events import BaseScored

# Plain questions a chat model answers and a base (pretrained only) model mostly rambles on.
VALIDATION = [
    [{"role": "user", "content": "What is the capital of Japan?"}, {"role": "assistant", "content": "Tokyo"}],
    [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}],
]


def test_the_candidates_are_the_installed_tunable_chat_models_that_fit(model_catalog):
    usable, skipped = candidate_bases(model_catalog)
    assert {entry.id for entry in usable} == {"smollm2-135m-instruct", "gemma3-270m-base"}
    assert skipped["qwen2.5-0.5b-instruct"] == "not installed"
    assert "phi3 models cannot be tuned" in skipped["phi3.5-mini-instruct"]
    assert "all-minilm-l6-v2" not in skipped  # an embedder is no candidate at all


@pytest.mark.slow
def test_the_best_zero_shot_model_is_chosen_and_every_score_recorded(model_catalog):
    events = []
    choice = choose_base(model_catalog, VALIDATION, on_event=events.append)
    assert set(choice.scores) == {"smollm2-135m-instruct", "gemma3-270m-base"}
    best = max(choice.scores.values(), key=lambda score: score.score)
    assert choice.scores[choice.model_id] is best
    assert choice.how == "best zero-shot score"
    recorded = choice.as_dict()
    assert recorded["scores"] == {model_id: score.score for model_id, score in choice.scores.items()}
    assert {e.model_id for e in events if isinstance(e, BaseScored)} == set(choice.scores)
    print("zero-shot scores:", recorded["scores"], "chosen:", choice.model_id)


def test_base_overrides_the_choice(model_catalog):
    choice = choose_base(model_catalog, VALIDATION[:1], override="gemma3-270m-base")
    assert (choice.model_id, choice.how, list(choice.scores)) == (
        "gemma3-270m-base",
        "--base",
        ["gemma3-270m-base"],
    )


@pytest.mark.parametrize(
    ("model_id", "error", "message"),
    [
        ("all-minilm-l6-v2", TuningError, "embedder, not a chat model"),
        ("qwen2.5-0.5b-instruct", TuningError, "not installed"),
        ("phi3.5-mini-instruct", TuningError, "cannot be tuned"),
        ("no-such-model", CatalogError, "no model 'no-such-model'"),
    ],
)
def test_a_base_that_cannot_be_tuned_is_refused(model_catalog, model_id, error, message):
    with pytest.raises(error, match=message):
        choose_base(model_catalog, VALIDATION, override=model_id)
