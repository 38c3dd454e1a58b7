"""``LLMClient.structured``: one question ("answer as an instance of this model") for every provider.

Per call: attempts bounded by a timeout (and their answers by a size limit), retried with tenacity
(exponential backoff with seeded jitter, ``Retry-After`` honoured) on timeouts, connection errors, 429
and 5xx, never on other 4xx nor on an answer not read;
validation in two steps (the schema, then the caller's context through Pydantic's validation
context); one repair request quoting the validation error; a call record emitted as an event.
A semaphore bounds the calls in flight, so n agents asking at once do not trip rate limits.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from llm_sched.config import DEFAULT_MAX_RESPONSE_BYTES, Settings
from llm_sched.core.events import EventBus, LLMCallEvent
from llm_sched.core.records import Answer, CallContext, CallRecord, Message, Outcome
from llm_sched.errors import UserError
from llm_sched.llm.extract import extract_json_object
from llm_sched.llm.transport import (
    RESPONSE_LIMIT,
    RawReply,
    Transport,
    TransportError,
    is_replay_miss,
    printable,
    unread_answer_in,
)
from llm_sched.scrub import RAW_LIMIT, Scrubber, clip

T = TypeVar("T", bound=BaseModel)
RETRY_AFTER_CAP_S = 120.0  # a server asking for longer than this is treated as down, not busy


class ReplayMissError(UserError):
    """The cassette has no recorded answer for a request: replay cannot go on."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    timeout: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # a larger answer is not read: the call fails

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            attempts=settings.llm_max_attempts,
            timeout=settings.llm_timeout,
            backoff_initial=settings.llm_backoff_initial,
            backoff_max=settings.llm_backoff_max,
            max_response_bytes=settings.llm_max_response_bytes,
        )


@dataclass
class _Tally:
    attempts: int = 0
    raw: list[str] = field(default_factory=list)
    tokens_in: int | None = None
    tokens_out: int | None = None

    def add(self, reply: RawReply) -> None:
        self.raw.append(reply.text)
        if reply.tokens_in is not None:
            self.tokens_in = (self.tokens_in or 0) + reply.tokens_in
        if reply.tokens_out is not None:
            self.tokens_out = (self.tokens_out or 0) + reply.tokens_out


_FAILURE_OUTCOME: dict[str, Outcome] = {"timeout": "timeout", "rate_limited": "rate_limited"}
_ENDPOINT_FAILURES = frozenset({"timeout", "rate_limited", "error"})  # the service failed, not the model's form


@dataclass
class Breaker:
    """A circuit breaker for one provider: after ``failures`` failed calls in a row, the next
    ``cooldown`` calls are not sent (the agents' heuristics answer), then one is tried again; one
    more failure opens it again. Counted in calls, not seconds, so a replay makes the same choices."""

    failures: int = 5
    cooldown: int = 20
    _in_a_row: int = field(default=0, init=False)  # state, not settings
    _skipping: int = field(default=0, init=False)

    def allow(self) -> bool:
        if self._skipping > 0:
            self._skipping -= 1
            return False
        return True

    def record(self, failed: bool) -> None:
        self._in_a_row = self._in_a_row + 1 if failed else 0
        if self._in_a_row >= self.failures:
            self._skipping, self._in_a_row = self.cooldown, self.failures - 1  # half-open afterwards


class LLMClient:
    """Structured calls through one transport. Public API: :meth:`structured`."""

    def __init__(
        self,
        transport: Transport,
        policy: RetryPolicy,
        *,
        concurrency: int = 8,
        bus: EventBus | None = None,
        seed: int = 0,
        replay_source: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        scrub: Callable[[str], str] = Scrubber(),
        breaker: Breaker | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self.transport = transport
        self.policy = policy
        self.bus = bus
        self.replay_source = replay_source
        # A transport that can serve only so many calls at once (one in-process model) gets no more:
        # waiting for it happens here, before an attempt's timeout starts.
        limit = getattr(transport, "max_concurrency", None)
        self._semaphore = asyncio.Semaphore(min(concurrency, limit) if limit else concurrency)
        self._rng = random.Random(seed)  # backoff jitter: seeded like everything else
        self._scrub = scrub  # every text of a call record, before anything is shortened
        self.breaker = breaker or Breaker()
        # Wall-clock budget for all of a run's calls: past it, the heuristics answer (None: no budget).
        self._deadline = time.monotonic() + deadline_s if deadline_s is not None else None
        self._sleep = sleep

    @property
    def provider(self) -> str:
        return self.transport.provider

    async def structured(self, messages: list[Message], schema: type[T], *, context: CallContext) -> Answer[T]:
        """Ask for an instance of ``schema``; never raises for model or service failures.

        Returns the validated model, or ``value=None`` with the outcome in the record, so the caller
        can fall back. Raises only :class:`ReplayMissError` (replay cannot answer at all).
        """
        started = time.monotonic()
        tally = _Tally()
        refused = self._refusal(started)
        if refused is not None:
            value, outcome, error = None, "error", refused
        else:
            value, outcome, error = await self._ask_and_validate(list(messages), schema, context, tally)
            self.breaker.record(outcome in _ENDPOINT_FAILURES)
        record = CallRecord(
            provider=self.transport.provider,
            model=self.transport.model,
            agent=context.agent,
            step=context.step,
            job_id=context.job_id,
            schema_name=schema.__name__,
            messages=[m.model_copy(update={"content": self._scrub(m.content)}) for m in messages],
            raw=[self._scrub(text) for text in tally.raw],
            latency_s=round(time.monotonic() - started, 6),
            tokens_in=tally.tokens_in,
            tokens_out=tally.tokens_out,
            attempts=tally.attempts,
            outcome=outcome,
            # Scrubbed whole, then made printable (a server's error body may hold escape sequences), then cut.
            error=clip(printable(self._scrub(error))) if error is not None else None,
        )
        if self.bus is not None:
            self.bus.emit(LLMCallEvent(record=record))
        return Answer[schema](value=value, record=record)  # type: ignore[valid-type]

    def _refusal(self, now: float) -> str | None:
        """Why this call is not sent at all (the run's deadline has passed, the breaker is open), or None."""
        if self._deadline is not None and now >= self._deadline:
            return "not sent: the run's LLM deadline (LLM_SCHED_RUN_DEADLINE) has passed; the heuristic answers"
        if not self.breaker.allow():
            return (f"not sent: circuit open after {self.breaker.failures} failed calls in a row; the heuristics "
                    f"answer the next {self.breaker.cooldown} calls, then the endpoint is tried again")
        return None

    async def _ask_and_validate(
        self, messages: list[Message], schema: type[T], context: CallContext, tally: _Tally
    ) -> tuple[T | None, Outcome, str | None]:
        try:
            reply = await self._with_retries(messages, schema, context, tally)
        except TransportError as exc:
            return None, _FAILURE_OUTCOME.get(exc.kind, "error"), f"{exc.kind}: {exc}"
        value, problem = validate_answer(reply.text, schema, context)
        if value is not None:
            return value, "ok", None
        repair = [*messages, Message(role="assistant", content=reply.text), repair_request(problem)]
        try:
            reply = await self._with_retries(repair, schema, context, tally)
        except TransportError as exc:
            return None, "invalid", f"{problem}; the repair request failed: {exc.kind}: {exc}"
        value, second = validate_answer(reply.text, schema, context)
        if value is not None:
            return value, "repaired", f"first answer: {problem}"
        return None, "invalid", f"{problem}; after repair: {second}"

    async def _with_retries(
        self, messages: list[Message], schema: type[BaseModel], context: CallContext, tally: _Tally
    ) -> RawReply:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, TransportError) and exc.retryable),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                tally.attempts += 1
                reply = await self._attempt(messages, schema, context)
        tally.add(reply)
        return reply

    async def _attempt(self, messages: list[Message], schema: type[BaseModel], context: CallContext) -> RawReply:
        timeout = self.policy.timeout
        async with self._semaphore:
            # Set before wait_for: the task it starts runs in a copy of this context.
            limit = RESPONSE_LIMIT.set(self.policy.max_response_bytes)
            try:
                return await asyncio.wait_for(self.transport.complete(messages, schema, timeout), timeout)
            except Exception as exc:  # noqa: BLE001 - every failure leaves here classified
                raise self._classify(exc, context, timeout) from exc
            finally:
                RESPONSE_LIMIT.reset(limit)

    def _classify(self, exc: Exception, context: CallContext, timeout: float) -> Exception:
        # A replay miss may hide under a client library's own error: check the cause chain first.
        if is_replay_miss(exc):
            return self._replay_miss(context)
        # An answer not read (too large, compressed), however a client library reported it: not retried.
        unread = unread_answer_in(exc)
        if unread is not None:
            return unread
        if isinstance(exc, TransportError):
            return exc
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return TransportError("timeout", f"no answer within {timeout:g} s")
        return TransportError("client", f"{type(exc).__name__}: {exc}"[:RAW_LIMIT])

    def _replay_miss(self, context: CallContext) -> ReplayMissError:
        source = self.replay_source or "the cassette"
        return ReplayMissError(
            f"{source} has no recorded answer for {context.describe()}. The run's prompts differ from the "
            "recording (changed prompts, scenario or seed?); record it again with --provider local --record-to PATH."
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransportError) and exc.retry_after is not None:
            return min(exc.retry_after, RETRY_AFTER_CAP_S)
        exponential = self.policy.backoff_initial * 2 ** (state.attempt_number - 1)
        jitter = self._rng.uniform(0, self.policy.backoff_initial)
        return min(self.policy.backoff_max, exponential + jitter)


def validate_answer(text: str, schema: type[T], context: CallContext) -> tuple[T | None, str]:
    """Schema first (types, ranges, enums, required fields), then the caller's context checks."""
    try:
        data = extract_json_object(text)
    except ValueError as exc:
        return None, str(exc)
    try:
        return schema.model_validate(data, context=context.validation), ""
    except ValidationError as exc:
        return None, _describe(exc)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "(answer)"
        parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def repair_request(problem: str) -> Message:
    return Message(
        role="user",
        content=(
            f"Your answer was not valid: {problem}. Answer again with exactly one JSON object that fixes "
            "this and follows the schema. No other text."
        ),
    )
