"""What agents ask their model for: a Pydantic model built for each request from what was offered.

The same model is the JSON schema the provider is asked to produce (a grammar for llama.cpp, Ollama's
``format``, ``json_schema`` for OpenAI-compatible servers) and the validator of the answer, so a
constrained decoder cannot get the form wrong, only the judgement (ARCHITECTURE.md, principle 3):

- ``option_id`` is an enum of the letters offered, never a free string;
- a vote's ``decision`` is ``accept`` or ``reject``;
- scores and confidences are numbers from a fixed grid inside their bounds (an enum too: grammar
  converters do not enforce ``minimum``/``maximum`` on numbers, but they do enforce enums);
- ``reasoning`` is length-capped;
- nothing the program already knows (job id, agent name) is asked for.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

REASONING_MAX_CHARS = 80
# Plain printable text: no quotes, backslashes or control characters. llama-cpp-python's grammar
# let a small model put raw newlines inside a JSON string (invalid JSON); a character class is
# enforced by every grammar converter, and the text is then safe on a terminal as well.
REASONING_PATTERN = rf"^[A-Za-z0-9 ,.;:!?'()%+/=<>_-]{{0,{REASONING_MAX_CHARS}}}$"
UNIT_STEP = 0.05  # proposal scores and vote confidences: 0.00, 0.05, ..., 1.00
BID_STEP = 0.01  # bids: every hundredth inside the range the evidence allows
_FROZEN = ConfigDict(frozen=True, extra="forbid")

Reasoning = Annotated[str, Field(max_length=REASONING_MAX_CHARS, pattern=REASONING_PATTERN,
                                 description="one short sentence: why")]


def grid(low: float, high: float, step: float) -> list[float]:
    """The numbers a bounded score may take, rounded to the step's decimals, ``low`` and ``high`` included."""
    decimals = len(f"{step:.10f}".rstrip("0").split(".")[1])
    count = int(round((high - low) / step))
    return [round(low + i * step, decimals) for i in range(count + 1)]


def _bounded(low: float, high: float, step: float, description: str) -> Any:
    values = grid(low, high, step)
    return Annotated[float, Field(ge=values[0], le=values[-1], description=description,
                                  json_schema_extra={"enum": values})]


@lru_cache(maxsize=256)
def proposal_answer(letters: tuple[str, ...], score_range: tuple[float, float] | None = None) -> type[BaseModel]:
    """The answer to "choose one of these options": ``option_id``, ``score``, ``reasoning``.

    ``score_range`` (bids): the score must stay within what the evidence supports, in hundredths;
    otherwise the score is 0 to 1 in steps of 0.05."""
    low, high = score_range if score_range is not None else (0.0, 1.0)
    step = BID_STEP if score_range is not None else UNIT_STEP
    return create_model(
        "ProposalAnswer",
        __config__=_FROZEN,
        __doc__="The model's choice among the offered placement options.",
        option_id=(Literal[letters], Field(description="the letter of the chosen option",  # type: ignore[valid-type]
                                           json_schema_extra={"enum": list(letters)})),
        score=(_bounded(low, high, step, "how good this placement is"), ...),
        reasoning=(Reasoning, ...),
    )


class VoteAnswer(BaseModel):
    """The model's judgement of one candidate placement."""

    model_config = _FROZEN

    decision: Literal["accept", "reject"] = Field(description="accept or reject the candidate placement")
    confidence: _bounded(0.0, 1.0, UNIT_STEP, "confidence in this vote")  # type: ignore[valid-type]
    reasoning: Reasoning

    @property
    def accept(self) -> bool:
        return self.decision == "accept"
