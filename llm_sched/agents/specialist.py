"""A specialist agent: a LangGraph state machine with a proposal path and a vote path.

Proposal: gather feasible options from state -> ask the model to choose one -> validated answer,
or the heuristic's best when the model fails or is off. A bidding agent (the supercomputer
federation) offers only the pool it runs, states verifiable claims about it, and asks its model for
a bid within what the evidence supports. Vote: run the feasibility check -> ask the
model only about feasible candidates -> validated answer, or the heuristic. The check overrides the
model: an honest agent never accepts an infeasible placement. A faulty agent (``behaviour`` set by the
scenario's fault schedule) corrupts what it would honestly have sent.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any, TypedDict

from llm_sched.agents.answers import VoteAnswer, proposal_answer
from llm_sched.agents.byzantine import corrupt_proposal, corrupt_vote, extra_votes
from llm_sched.agents.evidence import BID_TOLERANCE, Evidence, check_candidate, measured_claims
from llm_sched.agents.heuristics import Option, bid_option, placement_options, score_placement, why_infeasible
from llm_sched.agents.lgraph import bound, delegate, route
from llm_sched.agents.prompts import render, untrusted_data
from llm_sched.agents.reputation import Reputation
from llm_sched.core import ClusterState, Job, check_placement
from llm_sched.core.decisions import Proposal, Vote
from llm_sched.core.records import Answer, CallContext
from llm_sched.core.signing import PublicKeys, VoteKey, placement_digest
from llm_sched.llm.client import LLMClient


@dataclass
class World:
    """What every agent can see: the shared state, reputations, and who watches which pool."""

    state: ClusterState
    reputation: Reputation
    pool_owner: dict[str, str]
    scenario: str = ""

    def owner_reputation(self) -> dict[str, float]:
        return {pool: self.reputation.scores.get(agent, 1.0) for pool, agent in self.pool_owner.items()}

    def evidence(self, job: Job, candidate: Proposal) -> Evidence:
        """The verifiable verdict on ``candidate``, the same for every agent that computes it."""
        return check_candidate(self.state, job, candidate, self.reputation.scores.get(candidate.agent, 1.0))


def _node_state(state: ClusterState, nodes: tuple[str, ...], limit: int = 4) -> str:
    """Load and free resources of the chosen nodes; for many nodes, the range over them."""
    free = [state.available(n) for n in nodes]
    if len(nodes) <= limit:
        return "; ".join(f"{n}: load {state.load[n]:.0%}, free {f.cores} cores, {f.memory_gb:g} GB, {f.gpus} GPUs"
                         for n, f in zip(nodes, free, strict=True))
    loads = [state.load[n] for n in nodes]
    return (f"{len(nodes)} nodes: load {min(loads):.0%} to {max(loads):.0%}; free per node at least "
            f"{min(f.cores for f in free)} cores, {min(f.memory_gb for f in free):g} GB, {min(f.gpus for f in free)} GPUs")


class AgentState(TypedDict, total=False):
    step: str  # "proposal" or "vote"
    job: Job
    round: int
    candidate: Proposal
    options: list[Option]
    feasibility: Evidence
    answer: Answer[Any] | None
    result: Proposal | Vote | None
    extra: list[Vote]  # votes sent besides the agent's own (a faulty agent's)


def _fmt_time(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"


def _node_list(nodes: tuple[str, ...], limit: int = 16) -> str:
    """Node ids for a prompt; a long list is shortened to its ends and its length."""
    if len(nodes) <= limit:
        return ", ".join(nodes)
    return f"{', '.join(nodes[:3])}, ..., {nodes[-1]} ({len(nodes)} nodes)"


# Honest bids stay a little below the verification tolerance: the proposer's reputation (a factor of
# the evidence score) may move between its bid and the vote on it.
BID_HEADROOM = BID_TOLERANCE - 0.05
# The agent graph has no checkpointer of its own; inside a checkpointed consensus graph it would
# otherwise inherit "sync" durability and wait for checkpoints it never writes (LangGraph 1.2).
_DURABILITY = "async"
warnings.filterwarnings("ignore", message="`durability` has no effect when no checkpointer", category=UserWarning)


@dataclass
class SpecialistAgent:
    """One agent; ``propose`` and ``vote`` run its graph. ``llm`` None means heuristics only."""

    agent_id: str
    specialty: str
    world: World
    llm: LLMClient | None = None
    behaviour: str | None = None
    pool: str | None = None  # the pool this agent runs
    bidding: bool = False  # bid on ``pool`` only, with verifiable claims
    key: VoteKey | None = None  # signs every vote this agent sends (see issue_keys); None: unsigned

    @staticmethod
    @cache
    def graph() -> Any:
        """The agent state machine, compiled once and shared: each call binds its agent."""
        from langgraph.graph import END, START, StateGraph

        builder = StateGraph(AgentState)
        for name in ("_options", "_ask_proposal", "_propose", "_check", "_ask_vote", "_vote"):
            builder.add_node(name.lstrip("_"), delegate(name))
        builder.add_conditional_edges(START, route("_route_start"), ["options", "check"])
        builder.add_conditional_edges("options", route("_route_options"), ["ask_proposal", "propose"])
        builder.add_edge("ask_proposal", "propose")
        builder.add_conditional_edges("check", route("_route_check"), ["ask_vote", "vote"])
        builder.add_edge("ask_vote", "vote")
        builder.add_edge("propose", END)
        builder.add_edge("vote", END)
        # Never checkpointed, not even inside a checkpointed consensus graph: an agent's answer is
        # part of the consensus step that asked for it, which is where a resumed run picks up.
        return builder.compile(checkpointer=False)

    def _route_start(self, s: AgentState) -> str:
        return "options" if s["step"] == "proposal" else "check"

    def _route_options(self, s: AgentState) -> str:
        return "ask_proposal" if self._asks(s["options"]) else "propose"

    def _route_check(self, s: AgentState) -> str:
        return "ask_vote" if self._asks(s["feasibility"].ok) else "vote"

    def _asks(self, worth_asking: object) -> bool:
        # A silent or garbled agent sends nothing useful, so it does not ask its model either.
        return bool(worth_asking) and self.llm is not None and self.behaviour not in ("silent", "corrupted_output")

    async def propose(self, job: Job) -> Proposal | None:
        out = await self.graph().ainvoke({"step": "proposal", "job": job}, bound(self), durability=_DURABILITY)
        return out.get("result")

    async def vote(self, job: Job, candidate: Proposal, round_no: int) -> Vote | None:
        """This agent's own vote (signed when it holds a key)."""
        return (await self._vote_graph(job, candidate, round_no)).get("result")

    async def ballot(self, job: Job, candidate: Proposal, round_no: int) -> list[Vote]:
        """Every vote this agent sends on ``candidate``: its own (none when silent), and whatever
        else a faulty agent adds (a conflicting vote, votes forged in other agents' names)."""
        out = await self._vote_graph(job, candidate, round_no)
        own = out.get("result")
        return ([own] if own is not None else []) + list(out.get("extra", []))

    async def _vote_graph(self, job: Job, candidate: Proposal, round_no: int) -> dict[str, Any]:
        return await self.graph().ainvoke({"step": "vote", "job": job, "candidate": candidate, "round": round_no},
                                          bound(self), durability=_DURABILITY)

    # -- proposal path -------------------------------------------------------------------------
    def _options(self, s: AgentState) -> dict[str, Any]:
        state, job = self.world.state, s["job"]
        if self.bidding and self.pool is not None:
            option = bid_option(state, job, self.pool, self.world.reputation.scores.get(self.agent_id, 1.0))
            return {"options": [option] if option else []}
        return {"options": placement_options(state, job, self.specialty, self.world.owner_reputation())}

    async def _ask_proposal(self, s: AgentState) -> dict[str, Any]:
        job, options = s["job"], s["options"]
        listing = "\n".join(f"{o.option_id}: {o.placement.pool} {_node_list(o.placement.nodes)} ({o.score:.2f})"
                            for o in options)
        values = self._job_values(job) | {"options": listing}
        score_range = None
        if self.bidding:
            low, high = max(0.0, options[0].score - BID_TOLERANCE), min(1.0, options[0].score + BID_HEADROOM)
            score_range = (round(low, 2), round(high, 2))
            values |= self._pool_values(job) | {"score_low": f"{low:.2f}", "score_high": f"{high:.2f}"}
        else:
            values["job_label"] = job_label(job)
        step = "bid" if self.bidding else "proposal"
        schema = proposal_answer(tuple(o.option_id for o in options), score_range)
        answer = await self.llm.structured(render(self.specialty, step, values), schema,  # type: ignore[union-attr]
                                           context=self._context(step, job))
        return {"answer": answer}

    def _pool_values(self, job: Job) -> dict[str, str]:
        assert self.pool is not None
        pool = self.world.state.pools[self.pool]
        claims = measured_claims(self.world.state, job, self.pool)
        return {"pool": pool.id, "label": pool.label or pool.specialty, "interconnect": pool.interconnect or "-",
                "free_nodes": str(claims.free_nodes), "total_nodes": str(len(pool.nodes)),
                "background_load": f"{claims.background_load:.0%}"}

    def _propose(self, s: AgentState) -> dict[str, Any]:
        job, options, answer = s["job"], s["options"], s.get("answer")
        if not options:
            honest = Proposal(agent=self.agent_id, job_id=job.id, placement=None, score=0.0,
                              reasoning=self._why_no_option(job), via="check")
        elif answer is not None and answer.value is not None:
            rank = next(i for i, o in enumerate(options) if o.option_id == answer.value.option_id)
            honest = Proposal(agent=self.agent_id, job_id=job.id, placement=options[rank].placement,
                              score=answer.value.score, reasoning=answer.value.reasoning, via="llm", llm=answer.record,
                              heuristic_rank=rank, options_offered=len(options))
        else:
            best = options[0]
            honest = Proposal(agent=self.agent_id, job_id=job.id, placement=best.placement, score=best.score,
                              reasoning=self._heuristic_reason(best), via="fallback" if answer else "heuristic",
                              llm=answer.record if answer else None)
        if self.bidding and honest.placement is not None:
            honest = honest.model_copy(update={"claims": measured_claims(self.world.state, job, honest.placement.pool)})
        if self.behaviour:
            return {"result": _tagged(corrupt_proposal(self.behaviour, honest, job, self.world.state, self.pool), honest)}
        return {"result": honest}

    def _why_no_option(self, job: Job) -> str:
        if not (self.bidding and self.pool):
            return why_infeasible(self.world.state, job)
        free = measured_claims(self.world.state, job, self.pool).free_nodes
        return f"no bid: {free} of the {job.nodes} nodes the job needs can take it on {self.pool} now"

    @staticmethod
    def _heuristic_reason(option: Option) -> str:
        factors = ", ".join(f"{k} {v:.2f}" for k, v in option.factors.items())
        return f"best heuristic score {option.score:.2f} ({factors})"

    # -- vote path -----------------------------------------------------------------------------
    def _check(self, s: AgentState) -> dict[str, Any]:
        return {"feasibility": self.world.evidence(s["job"], s["candidate"])}

    async def _ask_vote(self, s: AgentState) -> dict[str, Any]:
        job, candidate = s["job"], s["candidate"]
        placement = candidate.placement
        assert placement is not None
        state = self.world.state
        values = self._job_values(job) | {
            "proposer": candidate.agent,
            "pool": placement.pool,
            "nodes": _node_list(placement.nodes),
            "feasibility": s["feasibility"].summary(),
            "node_state": _node_state(state, placement.nodes),
        }
        context = self._context(f"vote-r{s['round']}", job)
        answer = await self.llm.structured(render(self.specialty, "vote", values), VoteAnswer, context=context)  # type: ignore[union-attr]
        return {"answer": answer}

    def _vote(self, s: AgentState) -> dict[str, Any]:
        job, candidate, feasibility, answer = s["job"], s["candidate"], s["feasibility"], s.get("answer")
        base = {"agent": self.agent_id, "job_id": job.id, "round": s["round"]}
        if not feasibility.ok:  # the check overrides any model
            honest = Vote(**base, accept=False, confidence=1.0, reasoning=f"infeasible: {feasibility.summary()}", via="check")
        elif answer is not None and answer.value is not None:
            v = answer.value
            honest = Vote(**base, accept=v.accept, confidence=v.confidence, reasoning=v.reasoning, via="llm",
                          llm=answer.record)
        else:
            placement = candidate.placement
            assert placement is not None
            score, _ = score_placement(self.world.state, job, placement, self.specialty,
                                       self.world.owner_reputation().get(placement.pool, 1.0))
            honest = Vote(**base, accept=True, confidence=score, reasoning=f"feasible; heuristic score {score:.2f}",
                          via="fallback" if answer else "heuristic", llm=answer.record if answer else None)
        placement = candidate.placement
        assert placement is not None
        digest = placement_digest(job.id, placement.pool, placement.nodes)
        if not self.behaviour:
            return {"result": self._signed(honest, digest)}
        sound = check_placement(self.world.state, job, placement).ok
        own = _tagged(corrupt_vote(self.behaviour, honest, sound, placement.pool == self.pool), honest)
        extra = extra_votes(self.behaviour, own, sorted(self.world.reputation.scores))
        return {"result": self._signed(own, digest), "extra": [self._signed(v, digest) for v in extra]}

    def _signed(self, vote: Vote | None, digest: str) -> Vote | None:
        """``vote`` bound to the candidate's digest and signed with this agent's key (whatever agent
        the vote names: a forger can only sign with its own key)."""
        if vote is None:
            return None
        vote = vote.model_copy(update={"digest": digest})
        if self.key is None:
            return vote
        signature = self.key.sign(vote.job_id, vote.round, digest, vote.accept, agent=vote.agent)
        return vote.model_copy(update={"key_epoch": self.key.epoch, "signature": signature})

    # -- shared --------------------------------------------------------------------------------
    def _job_values(self, job: Job) -> dict[str, str]:
        """The job's facts, the program's own: id, kind, runtime and requirements. No free text."""
        return {"agent": self.agent_id, "job_id": job.id, "kind": job.kind, "runtime": _fmt_time(job.runtime_s),
                "job": job.describe()}

    def _context(self, step: str, job: Job) -> CallContext:
        return CallContext(agent=self.agent_id, step=step, scenario=self.world.scenario, job_id=job.id)


def job_label(job: Job) -> str:
    """The submitter's text about ``job`` as prompt data (see :func:`untrusted_data`).

    Only a proposal prompt shows it, where the model chooses among options that all fit. A vote
    judges a checked placement by the job's requirements and the nodes' state, so no label can make
    a feasible placement look unfit; a bid is a number inside the range the evidence allows, and
    SmolLM2-135M was seen copying a score written in a label, so a bid prompt shows no label either."""
    return untrusted_data({"name": job.name, "description": job.description})


def _tagged(faulty: Any, honest: Any) -> Any:
    """A faulty agent's message, marked as a rewrite when it differs from the honest one, so the
    model's own words are never shown for what the Byzantine behaviour made of them."""
    if faulty is None or faulty == honest:
        return faulty
    return faulty.model_copy(update={"byzantine": True})


def issue_keys(agents: dict[str, SpecialistAgent], run: str, epoch: int) -> PublicKeys:
    """A fresh key pair for every agent (its private half handed to the agent alone); returns the
    public halves, to be stored with the run and used by whoever checks the votes."""
    keys = {agent_id: VoteKey(agent_id, run, epoch) for agent_id in agents}
    for agent_id, key in keys.items():
        agents[agent_id].key = key
    return PublicKeys.of(run, keys)
