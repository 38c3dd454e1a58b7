"""The simulator's agents with a model choosing their awards (llm and hybrid advice) through the engine."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from llm_sched.agents.pool_adviser import PoolAdviser
from llm_sched.core.records import Message
from llm_sched.engine.awards import CertifiedAward
from llm_sched.llm.client import LLMClient, RetryPolicy
from llm_sched.llm.transport import RawReply
from llm_sched.protocols.quorum import byzantine_quorum
from llm_sched.sim.resilience import SimConfig, SimRun, simulate
from llm_sched.sim.resilience_metrics import measure
from llm_sched.sim.simulate import SyntheticSetup, prepare
from llm_sched.sim.workload import WorkloadSpec


class LastOption:
    """A model that always takes the last option it may choose (rarely the heuristic's first)."""

    provider, model, endpoint, max_concurrency = "scripted", "last-option", "memory", None

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        self.calls += 1
        choice = schema.model_json_schema()["properties"]["choice"]
        letters = choice["items"]["enum"] if choice.get("type") == "array" else choice["enum"]
        answer: Any = list(reversed(letters)) if choice.get("type") == "array" else letters[-1]
        return RawReply(json.dumps({"choice": answer, "reason": "the last option"}), 10, 5)


SETUP = SyntheticSetup(workload=WorkloadSpec(jobs=40, arrival="burst", burst_size=10))


def run(advice: str, budget: int = 1000) -> tuple[SimRun, LastOption]:
    jobs, cluster, schedule = prepare(SETUP, 2)
    model = LastOption()
    adviser = PoolAdviser(LLMClient(model, RetryPolicy(attempts=1, timeout=5)), advice, budget)  # type: ignore[arg-type]
    with adviser:
        return simulate(jobs, cluster, SimConfig("agents", advice=advice), schedule, adviser=adviser), model


def placements(result: SimRun) -> dict[str, tuple[str, ...]]:
    return {a.job_id: a.nodes for a in result.awards}


def test_llm_agents_need_an_adviser_in_their_mode() -> None:
    jobs, cluster, schedule = prepare(SETUP, 2)
    with pytest.raises(ValueError, match="llm agents need a pool adviser in llm mode; got none"):
        simulate(jobs, cluster, SimConfig("agents", advice="llm"), schedule)
    with pytest.raises(ValueError, match="unknown advice"):
        SimConfig("agents", advice="oracle")


def test_the_models_choices_become_certified_awards_that_differ_from_the_heuristics() -> None:
    llm, model = run("llm")
    heuristic = simulate(*prepare(SETUP, 2)[:2], SimConfig("agents"), prepare(SETUP, 2)[2])
    metrics = measure(llm)
    assert metrics.completed == 40 and metrics.llm_calls == model.calls > 0
    assert metrics.llm_choices == model.calls and metrics.llm_fallbacks == 0
    assert placements(llm) != placements(heuristic)  # the model chose other pools, and the voters accepted them
    q = byzantine_quorum(SETUP.agents)
    assert all(isinstance(a, CertifiedAward) and len(a.certificate.signatures) >= q for a in llm.awards)


def test_the_call_budget_is_per_run_and_the_heuristic_decides_the_rest() -> None:
    capped, model = run("llm", budget=3)
    metrics = measure(capped)
    assert model.calls == 3 == metrics.llm_calls and metrics.llm_choices == 3
    assert metrics.llm_fallbacks > 0 and dict(capped.advice)["fallback_budget"] == metrics.llm_fallbacks
    assert metrics.completed == 40


def test_hybrid_agents_ask_the_model_only_on_close_calls() -> None:
    hybrid, model = run("hybrid")
    llm, every = run("llm")
    assert 0 < model.calls < every.calls
    assert measure(hybrid).llm_calls == model.calls
