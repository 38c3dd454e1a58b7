"""The consensus graph (LangGraph): propose in parallel, choose, vote in parallel, tally, commit.

Proposals from every eligible agent fan out with ``Send``; the best candidate goes to a vote of all
agents, also fanned out. "Best" is never what a proposer says of its own proposal: candidates rank by
the median of the scores every voter recomputes from the shared state with its own specialty (a bid
by its bid, which the voters check against the evidence), and a self-reported score above its
author's own recomputed view is evidence against the author (see :mod:`llm_sched.agents.evidence`).
Every vote is signed by its agent (Ed25519, one key pair per agent per run session); the tally
counts only votes whose signatures verify, refuses forgeries and equivocations as evidence against
their sender (:mod:`llm_sched.protocols.certificate`). The round is then decided by a real protocol
(PBFT by default; Tendermint, or the reputation-weighted voting core) run by every agent on the
seeded simulated network, each core accepting as its agent's counted vote says
(:mod:`llm_sched.engine.round`); its messages are counted. It commits only with the
Byzantine quorum q = ceil((n+f+1)/2) of counted accepts, or, weighted, with q/n of the agents' total
reputation: the protocol's decision and that quorum agree, and both are required. A
commit carries those signed accepts as its quorum certificate, which anyone can check offline with
the run's public keys. Otherwise the next distinct candidate is tried, up to a round
bound, and then the job is rejected with a reason. Nothing here knows which agent is faulty: it only
sees what agents send. Fan-in is sorted by agent id, so events come out in the same order every run.
Reputations change only on verifiable facts (the feasibility check, bid and score verification
anyone can run, and silence).

Durability: with a LangGraph checkpointer (``checkpointer=``), each job is one thread and every
completed step is saved before the next starts. The state then also carries the events the job's
steps emitted (``log``) and the reputations after them (``reputation``), so a job interrupted
between proposal and tally continues from its last completed step, with the same events and
reputations, instead of asking the agents (and their LLMs) again.
"""

from __future__ import annotations

import operator
import time
from collections import Counter
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, TypedDict, cast

from llm_sched.agents.evidence import SCORE_TOLERANCE, Evidence, RankBy, over_claim, rank_candidates
from llm_sched.agents.heuristics import score_placement
from llm_sched.agents.lgraph import bound, delegate, route
from llm_sched.agents.reputation import (
    PENALTY_ACCEPTED_INFEASIBLE,
    PENALTY_BAD_VOTE,
    PENALTY_EQUIVOCATION,
    PENALTY_FALSE_CLAIM,
    PENALTY_INFEASIBLE_PROPOSAL,
    PENALTY_INFLATED_BID,
    PENALTY_OVERCLAIMED_SCORE,
    PENALTY_SILENCE,
    REWARD_GOOD_CONDUCT,
    Change,
)
from llm_sched.agents.specialist import SpecialistAgent, World, issue_keys
from llm_sched.core import Job, check_placement
from llm_sched.core.decisions import Certificate, Decision, Proposal, Vote
from llm_sched.core.events import (
    AgentExcluded,
    AgentReadmitted,
    CandidateChosen,
    DecisionMade,
    EventBus,
    LLMCallEvent,
    ProposalBlocked,
    ProposalMade,
    ReputationChanged,
    RunEvent,
    ScoreOverClaimed,
    TallyDone,
    VoteCast,
    VoteRefused,
)
from llm_sched.core.signing import PublicKeys, placement_digest
from llm_sched.engine.round import PROTOCOLS
from llm_sched.engine.tally import tally
from llm_sched.protocols.certificate import Screened
from llm_sched.protocols.messages import PlacementValue
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum


def _key(tried: Any) -> tuple[str, str, tuple[str, ...]]:
    """A placement key as a tuple again (a checkpoint may give tuples back as lists)."""
    job_id, pool, nodes = tried
    return (job_id, pool, tuple(nodes))


class ConsensusState(TypedDict, total=False):
    job: Job
    round: int
    proposals: Annotated[list[tuple[str, Proposal | None]], operator.add]
    tried: list[tuple[str, str, tuple[str, ...]]]
    candidate: Proposal | None
    votes: Annotated[list[tuple[str, int, list[Vote]]], operator.add]  # (sender, round, what it sent)
    passed: bool
    certificate: Certificate | None
    decision: Decision
    log: Annotated[list[RunEvent], operator.add]  # events emitted by the job's steps so far
    reputation: dict[str, Any]  # reputations after the last step that changed them


class ConsensusGraph:
    """Decides one job at a time among ``agents``; ``quorum`` defaults to the Byzantine quorum.
    ``weighted``: a vote weighs the voter's reputation and a candidate needs q/n of the total.
    ``rank_by="claimed"`` ranks candidates by their authors' own scores: unsafe, only for the test
    that shows what the recomputation prevents. ``keys``: the agents' public keys, when the caller
    issued their key pairs (the runner does, per run); otherwise the graph issues fresh ones."""

    def __init__(
        self,
        agents: Mapping[str, SpecialistAgent],
        world: World,
        bus: EventBus,
        *,
        quorum: int | None = None,
        max_rounds: int | None = None,
        weighted: bool = False,
        checkpointer: Any = None,
        rank_by: RankBy = "recomputed",
        keys: PublicKeys | None = None,
        protocol: str | None = None,
    ) -> None:
        self.agents = dict(sorted(agents.items()))
        self.keys = keys if keys is not None else issue_keys(self.agents, world.scenario or "local", 0)
        self.world = world
        self.bus = bus
        self.n = len(self.agents)
        self.f = byzantine_f(self.n)
        self.quorum = quorum if quorum is not None else byzantine_quorum(self.n)
        self.max_rounds = max_rounds if max_rounds is not None else self.n
        self.weighted = weighted
        self.protocol = protocol or ("weighted" if weighted else "pbft")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r}: the graph runs {', '.join(PROTOCOLS)}")
        self.rank_by: RankBy = rank_by
        self.checkpointer: Any = None
        self._compiled = self.graph()
        if checkpointer is not None:
            self.attach(checkpointer)
        self._started = 0.0
        self._log: list[RunEvent] = []
        self._reputation_changed = False

    @staticmethod
    @cache
    def graph() -> Any:
        """The consensus graph, compiled once and shared: each decision binds its ConsensusGraph."""
        return ConsensusGraph.builder().compile()

    @staticmethod
    def builder() -> Any:
        """The graph's shape, to compile with or without a checkpointer."""
        from langgraph.graph import END, START, StateGraph

        builder = StateGraph(ConsensusState)
        for name in ("_propose", "_collect", "_choose", "_vote", "_tally", "_commit", "_reject"):
            builder.add_node(name.lstrip("_"), delegate(name))
        builder.add_conditional_edges(START, route("_fan_out_proposals"), ["propose", "collect"])
        builder.add_edge("propose", "collect")
        builder.add_edge("collect", "choose")
        builder.add_conditional_edges("choose", route("_fan_out_votes"), ["vote", "reject"])
        builder.add_edge("vote", "tally")
        builder.add_conditional_edges("tally", route("_after_tally"), ["commit", "choose"])
        builder.add_edge("commit", END)
        builder.add_edge("reject", END)
        return builder

    def attach(self, checkpointer: Any) -> None:
        """Checkpoint every decision from now on with ``checkpointer`` (a LangGraph saver)."""
        self.checkpointer = checkpointer
        self._compiled = self.builder().compile(checkpointer=checkpointer)

    async def decide(self, job: Job, thread: str | None = None) -> Decision:
        """Run the graph for ``job``; returns the agreed decision (the cluster state is not changed
        here). With a checkpointer, ``thread`` names the job's thread: a thread with saved steps
        continues after the last of them, re-emitting the events those steps emitted."""
        config = bound(self, recursion_limit=20 + 4 * self.max_rounds)
        self._started = time.monotonic()
        self._log, self._reputation_changed = [], False
        start: dict[str, Any] | None = {"job": job, "round": 1, "tried": []}
        if self.checkpointer is None:
            out = await self._compiled.ainvoke(start, config)
            return cast(Decision, out["decision"])
        config["configurable"]["thread_id"] = thread or job.id
        saved = await self._compiled.aget_state(config)
        if saved.values:
            self._resume_from(saved)
            if not saved.next and "decision" in saved.values:  # done before the process died
                return cast(Decision, saved.values["decision"])
            start = None  # continue the saved thread
        out = await self._compiled.ainvoke(start, config, durability="sync")
        return cast(Decision, out["decision"])

    def _resume_from(self, saved: Any) -> None:
        """Back to where a saved thread stopped: its reputations, and its events emitted again.

        ``saved.values`` is the thread's last checkpoint with the writes of the steps that had
        completed after it already applied (a parallel step saves each task's writes as it
        finishes; LangGraph will not run those again)."""
        values = saved.values
        if values.get("reputation"):
            self.world.reputation.restore(values["reputation"])
        for event in values.get("log", []):
            self.bus.emit(event)

    def node_result(self, update: dict[str, Any]) -> dict[str, Any]:
        """Called with every node's update (see :func:`llm_sched.agents.lgraph.delegate`): adds the events
        the node emitted and, if it changed them, the reputations, for the checkpoint."""
        if self.checkpointer is None or not isinstance(update, dict):
            self._log.clear()
            return update
        extra: dict[str, Any] = {}
        if self._log:
            extra["log"], self._log = self._log, []
        if self._reputation_changed:
            extra["reputation"], self._reputation_changed = self.world.reputation.snapshot(), False
        return {**update, **extra} if extra else update

    def _emit(self, event: RunEvent) -> None:
        self._log.append(self.bus.emit(event))

    # -- proposals -----------------------------------------------------------------------------
    def _fan_out_proposals(self, s: ConsensusState) -> Any:
        from langgraph.types import Send

        eligible = [a for a in self.agents if self.world.reputation.can_propose(a)]
        return [Send("propose", {"job": s["job"], "agent": a}) for a in eligible] or "collect"

    async def _propose(self, payload: dict[str, Any]) -> dict[str, Any]:
        agent = payload["agent"]
        return {"proposals": [(agent, await self.agents[agent].propose(payload["job"]))]}

    def _collect(self, s: ConsensusState) -> dict[str, Any]:
        job = s["job"]
        # Every score is checked against the reputations the proposals were made with, before this
        # step's own changes move a pool owner's reputation (a factor of the score).
        owners = self.world.owner_reputation()
        for agent, proposal in sorted(s.get("proposals", []), key=lambda item: item[0]):
            if proposal is not None and proposal.llm is not None:
                self._emit(LLMCallEvent(record=proposal.llm))
            self._emit(ProposalMade(agent=agent, job_id=job.id, proposal=proposal))
            if proposal is None:
                self._apply([self.world.reputation.adjust(agent, -PENALTY_SILENCE, "no proposal in time")], job)
                continue
            self._check_score(job, agent, proposal, owners)
        return {}

    def _check_score(self, job: Job, agent: str, proposal: Proposal, owners: dict[str, float]) -> None:
        """A self-reported score above what the author's own specialty computes is evidence against it."""
        claim = over_claim(self.world.state, job, proposal, self.agents[agent].specialty, owners)
        if claim is None:
            return
        self._emit(ScoreOverClaimed(job_id=job.id, agent=agent, claimed=claim.claimed, recomputed=claim.recomputed,
                                    tolerance=SCORE_TOLERANCE))
        self._apply([self.world.reputation.adjust(agent, -PENALTY_OVERCLAIMED_SCORE, claim.reason)], job)

    def _choose(self, s: ConsensusState) -> dict[str, Any]:
        tried = {_key(t) for t in s.get("tried", [])}
        offered = [p for _agent, p in s.get("proposals", [])
                   if p is not None and p.placement is not None and p.placement.key() not in tried]
        specialties = [a.specialty for a in self.agents.values()]  # every voter's view, in agent order
        ranked = rank_candidates(self.world.state, s["job"], offered, specialties, self.world.owner_reputation(),
                                 self.rank_by)
        if not ranked or s["round"] > self.max_rounds:
            return {"candidate": None}
        candidate = ranked[0].proposal
        assert candidate.placement is not None
        recomputed = self.rank_by == "recomputed" and candidate.claims is None
        self._emit(CandidateChosen(job_id=s["job"].id, round=s["round"], proposer=candidate.agent,
                                   placement=candidate.placement, score=ranked[0].score,
                                   claimed=candidate.score if recomputed else None))
        return {"candidate": candidate}

    # -- votes ---------------------------------------------------------------------------------
    def _fan_out_votes(self, s: ConsensusState) -> Any:
        from langgraph.types import Send

        if s.get("candidate") is None:
            return "reject"
        return [Send("vote", {"job": s["job"], "agent": a, "candidate": s["candidate"], "round": s["round"]})
                for a in self.agents]

    async def _vote(self, payload: dict[str, Any]) -> dict[str, Any]:
        agent, round_no = payload["agent"], payload["round"]
        sent = await self.agents[agent].ballot(payload["job"], payload["candidate"], round_no)
        return {"votes": [(agent, round_no, sent)]}

    def _tally(self, s: ConsensusState) -> dict[str, Any]:
        job, round_no, candidate = s["job"], s["round"], s["candidate"]
        assert candidate is not None and candidate.placement is not None
        placement = candidate.placement
        digest = placement_digest(job.id, placement.pool, placement.nodes)
        ballots = sorted(((a, sent) for a, r, sent in s.get("votes", []) if r == round_no), key=lambda b: b[0])
        result = tally(self.protocol, list(self.agents), PlacementValue(job.id, placement.nodes, ""), ballots,
                       self.keys, round_no, digest, f"{self.world.scenario}/{job.id}/{round_no}", self.quorum,
                       self.world.reputation.scores if self.weighted else None)
        screened, ran, weights = result.screened, result.ran, result.weights
        self._emit_votes(job, round_no, screened)
        counted = screened.counted
        silent = [a for a in self.agents if a not in screened.first and a not in counted]
        evidence = self.world.evidence(job, candidate)
        weighed = {} if weights is None else {"accept_weight": weights.accept, "total_weight": weights.total,
                                              "needed_weight": weights.needed}
        self._emit(TallyDone(job_id=job.id, round=round_no, accepts=len(result.accepting),
                             rejects=len(counted) - len(result.accepting), silent=len(silent),
                             refused=len(screened.refused_agents), quorum=self.quorum, passed=result.passed,
                             candidate_feasible=evidence.ok, protocol=ran.protocol, protocol_decided=ran.decided,
                             messages=ran.messages, message_bytes=ran.bytes, protocol_time=ran.sim_time, **weighed))
        if not evidence.ok and not result.passed:
            self._emit(ProposalBlocked(job_id=job.id, proposer=candidate.agent, reasons=list(evidence.reasons())))
        judged: list[tuple[str, Vote | None]] = [(a, counted.get(a)) for a in self.agents
                                                 if a in counted or a in silent]
        self._apply(self._reputation_changes(candidate, judged, evidence, screened), job)
        if result.passed:
            return {"passed": True, "certificate": result.certificate}
        return {"passed": False, "round": round_no + 1, "tried": [*s.get("tried", []), placement.key()]}

    def _emit_votes(self, job: Job, round_no: int, screened: Screened) -> None:
        """Each agent's vote as it was sent (and whether it counts), then every refused vote."""
        for agent in self.agents:
            vote = screened.first.get(agent)
            if vote is not None and vote.llm is not None:
                self._emit(LLMCallEvent(record=vote.llm))
            self._emit(VoteCast(agent=agent, job_id=job.id, round=round_no, vote=vote,
                                counted=vote is None or agent in screened.counted))
        for refusal in screened.refused:
            self._emit(VoteRefused(job_id=job.id, round=round_no, sender=refusal.sender, claimed=refusal.claimed,
                                   reason=refusal.reason))

    def _reputation_changes(
        self, candidate: Proposal, votes: list[tuple[str, Vote | None]], evidence: Evidence, screened: Screened
    ) -> list[Change | None]:
        rep = self.world.reputation
        feasible = evidence.ok
        changes = []
        if not evidence.feasibility.ok:
            changes.append(rep.adjust(candidate.agent, -PENALTY_INFEASIBLE_PROPOSAL, "proposed an infeasible placement"))
        for claim in evidence.false_claims:
            changes.append(rep.adjust(candidate.agent, -PENALTY_FALSE_CLAIM, claim))
        if evidence.inflated:
            changes.append(rep.adjust(candidate.agent, -PENALTY_INFLATED_BID, evidence.inflated))
        # A refused vote is evidence against its sender: one penalty per sender and kind of fault a
        # round, however many votes it forged (the fault is the same, and one is enough to prove it).
        seen: set[tuple[str, bool]] = set()
        for refusal in screened.refused:
            if (refusal.sender, refusal.equivocation) in seen:
                continue
            seen.add((refusal.sender, refusal.equivocation))
            penalty = PENALTY_EQUIVOCATION if refusal.equivocation else PENALTY_BAD_VOTE
            changes.append(rep.adjust(refusal.sender, -penalty, refusal.reason))
        for agent, vote in votes:
            if vote is None:
                changes.append(rep.adjust(agent, -PENALTY_SILENCE, "no vote in time"))
            elif vote.accept and not feasible:
                changes.append(rep.adjust(agent, -PENALTY_ACCEPTED_INFEASIBLE, "accepted a candidate that fails the check"))
            elif vote.accept == feasible:
                changes.append(rep.adjust(agent, REWARD_GOOD_CONDUCT, "vote consistent with the facts"))
            # Rejecting a feasible placement is a judgement, not a verifiable fault: no change.
        return changes

    def _apply(self, changes: list[Change | None], job: Job) -> None:
        self._reputation_changed = True
        for change in changes:
            if change is not None:
                self._emit(ReputationChanged(agent=change.agent, old=change.old, new=change.new, reason=change.reason))
        excluded, readmitted = self.world.reputation.update_exclusions()
        for agent in excluded:
            self._emit(AgentExcluded(agent=agent, reputation=self.world.reputation.scores[agent], job_id=job.id))
        for agent in readmitted:
            self._emit(AgentReadmitted(agent=agent, reputation=self.world.reputation.scores[agent], job_id=job.id))

    def _after_tally(self, s: ConsensusState) -> str:
        return "commit" if s.get("passed") else "choose"

    # -- outcomes ------------------------------------------------------------------------------
    def _commit(self, s: ConsensusState) -> dict[str, Any]:
        job, candidate, cert = s["job"], s["candidate"], s.get("certificate")
        assert candidate is not None and cert is not None
        accepts = len(cert.signatures)
        decision = Decision(job_id=job.id, outcome="commit", placement=candidate.placement, proposer=candidate.agent,
                            reason=candidate.reasoning, rounds=s["round"], accepts=accepts, voters=self.n,
                            certificate=cert)
        quality = self._quality(job, candidate.placement)
        self._emit(DecisionMade(decision=decision, unanimous=accepts == self.n, wall_s=self._elapsed(), quality=quality))
        return {"decision": decision}

    def _quality(self, job: Job, placement: Any) -> float | None:
        """The modelled quality of a committed placement; None if it does not even fit (a quorum of liars)."""
        if not check_placement(self.world.state, job, placement).ok:
            return None
        return score_placement(self.world.state, job, placement, "general", 1.0)[0]

    def _reject(self, s: ConsensusState) -> dict[str, Any]:
        job = s["job"]
        proposals = [p for _, p in s.get("proposals", []) if p is not None]
        abstentions = Counter(p.reasoning for p in proposals if p.placement is None and p.via == "check")
        rounds = s["round"] - 1
        if sum(abstentions.values()) >= self.quorum:
            # A quorum of agents found no feasible option: their reason is the agreed one.
            reason = abstentions.most_common(1)[0][0]
        elif rounds == 0:  # nothing was put to a vote: say why, rather than count no rounds
            found = f": {sum(abstentions.values())} of {self.n} found none feasible ({abstentions.most_common(1)[0][0]})"
            reason = "no agent proposed a placement" + (found if abstentions else "")
        else:
            reason = f"no candidate reached the quorum of {self.quorum} in {rounds} round{'s' if rounds != 1 else ''}"
        decision = Decision(job_id=job.id, outcome="reject", reason=reason, rounds=rounds, voters=self.n)
        self._emit(DecisionMade(decision=decision, unanimous=sum(abstentions.values()) == self.n,
                                   wall_s=self._elapsed()))
        return {"decision": decision}

    def _elapsed(self) -> float:
        """Wall time of this decision so far: the consensus time reported per job."""
        return round(time.monotonic() - self._started, 4)
