"""The agent layer the protocols ask: proposals from a specialist (heuristic or LLM), acceptance by
the feasibility check, and the values Byzantine agents make up.

Each agent sees the cluster as it started plus, slot by slot, the decisions it knows: a slot it has
decided, else the value it last proposed or accepted for that slot (a leader proposing slots 1..3
while slot 0 is in flight assumes its own slot-0 proposal, as a pipelining replica does). So
later jobs see the capacity earlier ones reserved. The runner checks afterwards, in slot order
against the real state, that every decided placement still fits (``ProposalLog`` and ``feasible``).

- ``propose(slot)``: the honest agent's answer: in ``heuristic`` mode the best option of
  :func:`~llm_sched.agents.heuristics.placement_options` for the agent's specialty; in ``llm`` mode
  a :class:`~llm_sched.agents.specialist.SpecialistAgent` with the LLM client, whose model chooses
  among the feasible options through the structured-output path (or whose heuristic answers when
  the model fails); with no feasible option, the agreed reject (placement None, with the reason).
- ``validate(slot, value)``: :func:`~llm_sched.core.check_placement` against the agent's view;
  a reject passes only when the agent itself sees no feasible option.
- ``alternative(slot)`` / ``invalid(slot)``: what the harness's Byzantine wrappers send instead
  (a feasible placement no honest agent would pick, and one that fails the check).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from llm_sched.agents.heuristics import placement_options, why_infeasible
from llm_sched.core import ClusterState, Job, Placement, check_placement, fitting_nodes
from llm_sched.core.feasibility import Feasibility, OverAllocationError, commit
from llm_sched.protocols.messages import AgentId, PlacementValue, Value, digest_of

if TYPE_CHECKING:
    from llm_sched.core.decisions import Proposal
    from llm_sched.llm.client import LLMClient
    from llm_sched.transport.network import Network


ROUND_LIMIT_REJECT = "no agreement within the round limit"


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """Who an agent is: its id on the network, its specialty, and whether it asks an LLM."""

    id: AgentId
    name: str
    specialty: str
    mode: str  # "heuristic" or "llm"


# --- feasibility of a consensus value ------------------------------------------------------------


def to_placement(state: ClusterState, job: Job, value: PlacementValue) -> Placement | None:
    """The domain placement a value names (its pool is the first node's), or None for a reject."""
    if value.placement is None:
        return None
    nodes = tuple(value.placement)
    pool = state.pool_of.get(nodes[0], "(unknown)") if nodes else "(none)"
    return Placement(job_id=value.job_id, pool=pool, nodes=nodes)


def feasible(state: ClusterState, job: Job, value: Value) -> Feasibility:
    """The feasibility check for a consensus value: the right job, and a placement that fits now, or
    a reject when nothing fits."""
    if not isinstance(value, PlacementValue):
        return Feasibility(False, ("not a placement decision",))
    if value.job_id != job.id:
        return Feasibility(False, (f"value is for job {value.job_id}, not {job.id}",))
    if value.placement is None:
        if placement_options(state, job, "general", {}, limit=1):
            return Feasibility(False, ("reject while a feasible placement exists",))
        return Feasibility(True)
    if not value.placement:
        return Feasibility(False, ("no nodes given",))
    placement = to_placement(state, job, value)
    assert placement is not None
    return check_placement(state, job, placement)


@lru_cache(maxsize=1 << 16)
def _digest(value: Value | None) -> str:
    """``digest_of``, remembered: prefixes of the same values are digested again and again."""
    return digest_of(value)


class ClusterViews:
    """Cluster states after a sequence of known decisions, built on demand and cached."""

    def __init__(self, base: ClusterState, jobs: Sequence[Job]) -> None:
        self.base, self.jobs = base, tuple(jobs)
        self._states: dict[tuple[str, ...], ClusterState] = {(): base}
        self._verdicts: dict[tuple[tuple[str, ...], int, str], Feasibility] = {}

    def state(self, known: Sequence[Value | None]) -> tuple[tuple[str, ...], ClusterState]:
        """(key, state): the cluster after applying, in slot order, each known value that fits."""
        key = tuple(_digest(v) for v in known)
        state = self._states.get(key)
        if state is None:
            state = ClusterState(self.base.pools.values())
            for slot, value in enumerate(known):
                if isinstance(value, PlacementValue) and value.placement:
                    job = self.jobs[slot]
                    try:  # commit re-checks: a placement that does not fit (any more) is not applied
                        commit(state, job, to_placement(state, job, value))  # type: ignore[arg-type]
                    except OverAllocationError:
                        pass
            self._states[key] = state
        return key, state

    def verdict(self, key: tuple[str, ...], state: ClusterState, slot: int, value: Value) -> Feasibility:
        cache = (key, slot, _digest(value))
        if cache not in self._verdicts:
            self._verdicts[cache] = feasible(state, self.jobs[slot], value)
        return self._verdicts[cache]


# --- what a run records --------------------------------------------------------------------------


@dataclass
class LLMTally:
    """LLM use for one slot (or a whole run)."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    latency_wall_s: float = 0.0

    def add(self, other: LLMTally) -> None:
        self.calls += other.calls
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.outcomes.update(other.outcomes)
        self.latency_wall_s += other.latency_wall_s

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "outcomes": dict(sorted(self.outcomes.items()))}


@dataclass
class ProposalLog:
    """Shared by the agents of one run: where decisions are recorded, who made up which value."""

    jobs: tuple[Job, ...]
    net: Network | None = None
    # slot -> digest -> {"honest"|"byzantine": agents}; every value any agent produced
    produced: dict[int, dict[str, dict[str, set[AgentId]]]] = field(default_factory=dict)
    via: dict[int, Counter[str]] = field(default_factory=dict)  # slot -> how honest proposals were made
    llm: dict[int, LLMTally] = field(default_factory=dict)

    def decisions(self, agent: AgentId) -> dict[int, Value]:
        return self.net.decisions.get(agent, {}) if self.net is not None else {}

    def record(self, slot: int, value: Value, origin: str, agent: AgentId) -> None:
        self.produced.setdefault(slot, {}).setdefault(_digest(value), {}).setdefault(origin, set()).add(agent)

    def origins(self, slot: int, value: Value) -> dict[str, set[AgentId]]:
        return self.produced.get(slot, {}).get(_digest(value), {})


# --- the LLM behind llm-mode agents --------------------------------------------------------------


class Advisor:
    """Asks a :class:`SpecialistAgent` with an LLM client for a proposal, from synchronous hooks.

    The cores call their hooks synchronously, so the agent's graph runs on one event loop kept
    for the whole experiment.
    """

    def __init__(self, client: LLMClient, scenario: str) -> None:
        self.client, self.scenario = client, scenario
        self._loop = asyncio.new_event_loop()

    def propose(self, profile: AgentProfile, state: ClusterState, job: Job) -> Proposal | None:
        from llm_sched.agents.reputation import Reputation
        from llm_sched.agents.specialist import SpecialistAgent, World

        world = World(state=state, reputation=Reputation.fresh([profile.name]), pool_owner={}, scenario=self.scenario)
        agent = SpecialistAgent(agent_id=profile.name, specialty=profile.specialty, world=world, llm=self.client)
        return self._loop.run_until_complete(agent.propose(job))

    def close(self) -> None:
        self._loop.close()


# --- one agent -----------------------------------------------------------------------------------


class AgentHooks:
    """One agent's answers to its core (and to the Byzantine wrapper around it, if any)."""

    def __init__(self, profile: AgentProfile, views: ClusterViews, ledger: ProposalLog,
                 advisor: Advisor | None = None) -> None:
        self.profile, self.views, self.ledger, self.advisor = profile, views, ledger, advisor
        self.jobs = views.jobs
        self._held: dict[int, Value] = {}  # slot -> value last proposed or accepted (volatile)
        self._answers: dict[tuple[int, tuple[str, ...]], tuple[PlacementValue, float]] = {}

    def restart(self) -> None:
        """A crash loses what the agent held in memory; decided slots come back from the core."""
        self._held.clear()

    def view(self, slot: int) -> tuple[tuple[str, ...], ClusterState]:
        decided = self.ledger.decisions(self.profile.id)
        known = [decided.get(t, self._held.get(t)) for t in range(slot)]
        return self.views.state(known)

    # -- honest -----------------------------------------------------------------------------------
    def propose(self, slot: int) -> Value:
        value, _ = self._answer(slot)
        self._held[slot] = value
        return value

    def bid(self, slot: int) -> tuple[Value, float]:
        value, score = self._answer(slot)
        self._held[slot] = value
        return value, score

    def reject(self, slot: int) -> Value:
        """The agreed reject a protocol falls back on (negotiation past its round limit): the same value
        at every agent, since the protocol recognises it by its digest."""
        value = PlacementValue(self.jobs[slot].id, None, ROUND_LIMIT_REJECT)
        self.ledger.record(slot, value, "honest", self.profile.id)
        return value

    def validate(self, slot: int, value: Value) -> bool:
        if not 0 <= slot < len(self.jobs):
            return False
        key, state = self.view(slot)
        ok = self.views.verdict(key, state, slot, value).ok
        if ok:
            self._held[slot] = value
        return ok

    def _options(self, state: ClusterState, job: Job, limit: int = 3) -> list[Any]:
        return placement_options(state, job, self.profile.specialty, {}, limit=limit)

    def _answer(self, slot: int) -> tuple[PlacementValue, float]:
        key, state = self.view(slot)
        cached = self._answers.get((slot, key))
        if cached is not None:
            return cached
        job = self.jobs[slot]
        if self.profile.mode == "llm" and self.advisor is not None:
            answer = self._ask_llm(slot, state, job)
        else:
            answer = self._heuristic(slot, state, job)
        self._answers[(slot, key)] = answer
        self.ledger.record(slot, answer[0], "honest", self.profile.id)
        return answer

    def _heuristic(self, slot: int, state: ClusterState, job: Job) -> tuple[PlacementValue, float]:
        options = self._options(state, job, limit=1)
        self.ledger.via.setdefault(slot, Counter())["heuristic" if options else "check"] += 1
        if not options:
            return PlacementValue(job.id, None, why_infeasible(state, job)), 0.0
        best = options[0]
        reason = f"{self.profile.name}: best heuristic option, {best.placement.pool} score {best.score:.2f}"
        return PlacementValue(job.id, best.placement.nodes, reason), best.score

    def _ask_llm(self, slot: int, state: ClusterState, job: Job) -> tuple[PlacementValue, float]:
        assert self.advisor is not None
        proposal = self.advisor.propose(self.profile, state, job)
        tally = self.ledger.llm.setdefault(slot, LLMTally())
        if proposal is None:  # a specialist without a behaviour always answers; be safe anyway
            return self._heuristic(slot, state, job)
        self.ledger.via.setdefault(slot, Counter())[proposal.via] += 1
        if proposal.llm is not None:
            record = proposal.llm
            tally.calls += 1
            tally.tokens_in += record.tokens_in or 0
            tally.tokens_out += record.tokens_out or 0
            tally.outcomes[record.outcome] += 1
            tally.latency_wall_s += record.latency_s
        if proposal.placement is None:
            return PlacementValue(job.id, None, proposal.reasoning), 0.0
        reason = f"{self.profile.name}: {proposal.via} choice, {proposal.placement.pool} score {proposal.score:.2f}"
        return PlacementValue(job.id, proposal.placement.nodes, reason), proposal.score

    # -- Byzantine (asked by transport.harness.ByzantineCore / SplitBrainCore) --------------------
    def alternative(self, slot: int) -> Value:
        """A feasible value no honest agent proposes: the worst-scored option, or the best option's pool
        on its most loaded fitting nodes, or (only one way to place the job) the best option restated."""
        _, state = self.view(slot)
        job = self.jobs[slot]
        options = self._options(state, job, limit=100)
        name = self.profile.name
        if len(options) >= 2:
            value = PlacementValue(job.id, options[-1].placement.nodes, f"{name}: byzantine alternative")
        elif options:
            best = options[0].placement
            fits = fitting_nodes(state, job, best.pool)
            other = tuple(fits[::-1][: job.nodes])
            if sorted(other) != sorted(best.nodes):
                value = PlacementValue(job.id, other, f"{name}: byzantine alternative")
            else:
                value = PlacementValue(job.id, best.nodes, f"{name}: byzantine restatement")
        else:
            value = PlacementValue(job.id, None, f"{name}: byzantine reject")
        self.ledger.record(slot, value, "byzantine", self.profile.id)
        return value

    def invalid(self, slot: int) -> Value:
        """A placement the feasibility check rejects: nodes that cannot take the job, or a node too many."""
        _, state = self.view(slot)
        job = self.jobs[slot]
        value: PlacementValue | None = None
        for pool_id in sorted(state.pools):
            nodes = tuple(n.id for n in state.pools[pool_id].nodes)
            ranked = sorted(nodes, key=lambda n: (state.fits(n, job.per_node), -state.load[n], n))
            candidate = PlacementValue(job.id, tuple(ranked[: job.nodes]), f"{self.profile.name}: byzantine invalid")
            if not feasible(state, job, candidate).ok:
                value = candidate
                break
        if value is None:  # every pool's nodes fit: ask for one node more than the job needs
            pool = state.pools[sorted(state.pools)[0]]
            nodes = tuple(n.id for n in pool.nodes)[: job.nodes + 1]
            value = PlacementValue(job.id, nodes + ("ghost-node",) * (job.nodes + 1 - len(nodes)),
                                   f"{self.profile.name}: byzantine invalid")
        self.ledger.record(slot, value, "byzantine", self.profile.id)
        return value
