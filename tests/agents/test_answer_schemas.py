"""Per-call answer schemas: built from what was offered, so the form of an answer cannot be wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llm_sched.agents.answers import REASONING_MAX_CHARS, VoteAnswer, grid, proposal_answer


def test_option_id_is_an_enum_of_exactly_the_offered_letters() -> None:
    schema = proposal_answer(("A", "B", "C")).model_json_schema()
    assert schema["properties"]["option_id"]["enum"] == ["A", "B", "C"]
    assert proposal_answer(("A",)).model_json_schema()["properties"]["option_id"]["enum"] == ["A"]


def test_a_letter_that_was_not_offered_is_invalid() -> None:
    schema = proposal_answer(("A", "B"))
    with pytest.raises(ValidationError, match="option_id"):
        schema.model_validate({"option_id": "Z", "score": 0.5, "reasoning": "r"})


def test_the_schema_asks_nothing_the_program_already_knows() -> None:
    for schema in (proposal_answer(("A", "B")), VoteAnswer):
        properties = schema.model_json_schema()["properties"]
        assert "job_id" not in properties and "agent" not in properties
        assert schema.model_json_schema()["additionalProperties"] is False


def test_vote_decision_is_an_enum_and_accept_follows_it() -> None:
    assert VoteAnswer.model_json_schema()["properties"]["decision"]["enum"] == ["accept", "reject"]
    assert VoteAnswer.model_validate({"decision": "accept", "confidence": 0.9, "reasoning": "r"}).accept
    assert not VoteAnswer.model_validate({"decision": "reject", "confidence": 0.9, "reasoning": "r"}).accept
    with pytest.raises(ValidationError):
        VoteAnswer.model_validate({"decision": "maybe", "confidence": 0.9, "reasoning": "r"})


def test_scores_are_bounded_and_offered_as_a_grid_a_grammar_can_enforce() -> None:
    score = proposal_answer(("A",)).model_json_schema()["properties"]["score"]
    assert score["minimum"] == 0.0 and score["maximum"] == 1.0
    assert score["enum"] == grid(0.0, 1.0, 0.05) and len(score["enum"]) == 21
    bid = proposal_answer(("A",), (0.42, 0.61)).model_json_schema()["properties"]["score"]
    assert bid["enum"][0] == 0.42 and bid["enum"][-1] == 0.61 and len(bid["enum"]) == 20
    with pytest.raises(ValidationError):
        proposal_answer(("A",)).model_validate({"option_id": "A", "score": 1.5, "reasoning": "r"})


def test_reasoning_is_length_capped() -> None:
    assert VoteAnswer.model_json_schema()["properties"]["reasoning"]["maxLength"] == REASONING_MAX_CHARS
    with pytest.raises(ValidationError, match="reasoning"):
        VoteAnswer.model_validate({"decision": "accept", "confidence": 0.5, "reasoning": "x" * (REASONING_MAX_CHARS + 1)})


def test_the_same_offer_gives_the_same_schema_object() -> None:
    assert proposal_answer(("A", "B")) is proposal_answer(("A", "B"))
    assert proposal_answer(("A", "B")) is not proposal_answer(("A", "B", "C"))
