"""What agents ask their model for: one Pydantic model per step, used as the schema and to validate.

Context checks (through Pydantic's validation context) tie an answer to the question asked: the
option must be one of those offered, the job id must be the job asked about.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator


def _the_job_asked_about(value: str, info: ValidationInfo) -> str:
    expected = (info.context or {}).get("job_id")
    if expected is not None and value != expected:
        raise ValueError(f"job_id must be {expected!r}, not {value!r}")
    return value


JobId = Annotated[str, AfterValidator(_the_job_asked_about), Field(description="the id of the job being placed")]
Reasoning = Annotated[str, Field(max_length=600, description="one or two sentences: why")]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class ProposalAnswer(BaseModel):
    """The model's choice among the offered placement options."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: JobId
    option_id: str = Field(description="the letter of the chosen option")
    score: Unit = Field(description="how good this placement is, 0 to 1")
    reasoning: Reasoning

    @field_validator("option_id")
    @classmethod
    def _offered(cls, value: str, info: ValidationInfo) -> str:
        offered = (info.context or {}).get("options")
        if offered is not None and value not in offered:
            raise ValueError(f"option {value!r} was not offered; choose one of {', '.join(offered)}")
        return value

    @field_validator("score")
    @classmethod
    def _within_evidence(cls, value: float, info: ValidationInfo) -> float:
        # A bid must stay within what the facts support (the range the prompt states).
        allowed = (info.context or {}).get("score_range")
        if allowed is not None and not allowed[0] <= value <= allowed[1]:
            raise ValueError(f"score {value:g} is outside the range the evidence allows, {allowed[0]:.2f} to {allowed[1]:.2f}")
        return value


class VoteAnswer(BaseModel):
    """The model's judgement of one candidate placement."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: JobId
    accept: bool = Field(description="true to accept the candidate placement")
    confidence: Unit = Field(description="confidence in this vote, 0 to 1")
    reasoning: Reasoning
