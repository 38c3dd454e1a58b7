"""What one structured LLM call asked, got and how it ended."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["ok", "repaired", "invalid", "timeout", "rate_limited", "error"]
T = TypeVar("T", bound=BaseModel)


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class CallContext(BaseModel):
    """Who asks and what the answer must agree with.

    ``validation`` is handed to Pydantic as the validation context, so the answer model's own
    validators can check, for example, that a node id is one of the nodes offered.
    """

    model_config = ConfigDict(frozen=True)

    agent: str
    step: str
    scenario: str | None = None
    job_id: str | None = None
    validation: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"scenario {self.scenario}" if self.scenario else None, f"agent {self.agent}", f"step {self.step}"]
        if self.job_id:
            parts.append(f"job {self.job_id}")
        return ", ".join(p for p in parts if p)


class CallRecord(BaseModel):
    """The full record of one call, emitted as an event whatever the outcome."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str
    agent: str
    step: str
    job_id: str | None = None
    schema_name: str
    messages: list[Message]
    raw: list[str] = Field(default_factory=list, description="text of each answer received, repair included")
    latency_s: float
    tokens_in: int | None = None
    tokens_out: int | None = None
    attempts: int
    outcome: Outcome
    error: str | None = None


class Answer(BaseModel, Generic[T]):
    """A validated model (``value``), or ``None`` with the reason in ``record``."""

    model_config = ConfigDict(frozen=True)

    value: T | None
    record: CallRecord

    @property
    def ok(self) -> bool:
        return self.value is not None
