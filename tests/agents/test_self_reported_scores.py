"""Self-reported scores decide nothing: candidates rank by the voters' recomputed scores, an
over-claimed score is evidence against its author, and vote flipping cannot move the outcome."""

from __future__ import annotations

import math
import statistics
from typing import Any

from llm_sched.agents.evidence import SCORE_TOLERANCE, rank_candidates
from llm_sched.agents.heuristics import score_placement
from llm_sched.agents.reputation import (
    EXCLUDE_BELOW,
    PENALTY_ACCEPTED_INFEASIBLE,
    PENALTY_OVERCLAIMED_SCORE,
    REWARD_GOOD_CONDUCT,
    SUSPECT_BELOW,
    Reputation,
)
from llm_sched.agents.specialist import SpecialistAgent
from llm_sched.core import Job, check_placement
from llm_sched.core.decisions import Proposal
from llm_sched.core.events import EventBus
from llm_sched.orchestration.graph import ConsensusGraph
from llm_sched.orchestration.summary import summarize
from tests.agents.fixtures import AGENTS, build, federation, job
from tests.conftest import Cli

LIAR = "storage-agent"  # sorts last: no tie goes its way, so an award it wins is won on the scores
KINDS = ("physics", "genomics", "analytics", "climate", "graph", "fusion", "ai", "cosmology")
JOBS = [job(f"j{i}", kind=kind) for i, kind in enumerate(KINDS)]
# Jobs until a liar caught on every job is excluded: each job costs it the penalty, less the reward
# its (honest) vote earns; the first job also pays for the distance from a full reputation.
DETECTION_BOUND = math.ceil((1.0 - EXCLUDE_BELOW) / (PENALTY_OVERCLAIMED_SCORE - REWARD_GOOD_CONDUCT)) + 1


class WorstOptionFirst(SpecialistAgent):
    """Stands in for a model whose judgement picks the worst of its feasible options."""

    def _options(self, s: Any) -> dict[str, Any]:
        return {"options": list(reversed(super()._options(s)["options"]))}


def _liar_graph(rank_by: str = "recomputed") -> tuple[ConsensusGraph, EventBus]:
    graph, world, bus = build()
    liar = WorstOptionFirst(LIAR, AGENTS[LIAR][0], world, behaviour="inflated_scores")
    graph = ConsensusGraph({**graph.agents, LIAR: liar}, world, bus, rank_by=rank_by)  # type: ignore[arg-type]
    return graph, bus


def _median(graph: ConsensusGraph, j: Job, p: Proposal, scores: dict[str, float]) -> float:
    """The voters' median view of ``p``, recomputed here independently of the graph."""
    assert p.placement is not None
    owner = {pool: agent for agent, (_, pool) in AGENTS.items()}[p.placement.pool]
    return statistics.median(score_placement(graph.world.state, j, p.placement, a.specialty, scores[owner])[0]
                             for a in graph.agents.values())


def _beaten_awards(graph: ConsensusGraph, bus: EventBus) -> list[str]:
    """Jobs the liar was awarded although an honest feasible proposal scored higher on recomputation
    (with the reputations in force when the candidate was chosen)."""
    jobs = {j.id: j for j in JOBS}
    scores = {a: 1.0 for a in graph.agents}
    proposals: dict[str, list[Proposal]] = {}
    best_honest: dict[str, float] = {}
    liar_score: dict[str, float] = {}
    beaten = []
    for e in bus.events:
        if e.kind == "reputation":
            scores[e.agent] = e.new  # type: ignore[attr-defined]
        elif e.kind == "proposal" and e.proposal is not None and e.proposal.placement is not None:  # type: ignore[attr-defined]
            proposals.setdefault(e.job_id, []).append(e.proposal)  # type: ignore[attr-defined]
        elif e.kind == "candidate" and e.round == 1:  # type: ignore[attr-defined]
            j = jobs[e.job_id]  # type: ignore[attr-defined]
            for p in proposals.get(j.id, []):
                if not check_placement(graph.world.state, j, p.placement).ok:  # type: ignore[arg-type]
                    continue
                value = _median(graph, j, p, scores)
                if p.agent == LIAR:
                    liar_score[j.id] = value
                else:
                    best_honest[j.id] = max(best_honest.get(j.id, 0.0), value)
        elif e.kind == "decision" and e.decision.outcome == "commit" and e.decision.proposer == LIAR:  # type: ignore[attr-defined]
            job_id = e.decision.job_id  # type: ignore[attr-defined]
            if best_honest.get(job_id, 0.0) > liar_score[job_id] + 1e-9:
                beaten.append(job_id)
    return beaten


async def test_an_inflated_liar_never_wins_an_award_an_honest_candidate_beats_on_recomputed_scores() -> None:
    graph, bus = _liar_graph()
    decisions = [await graph.decide(j) for j in JOBS]
    assert all(d.outcome == "commit" for d in decisions)
    assert _beaten_awards(graph, bus) == []
    chosen = [e for e in bus.events if e.kind == "candidate"]
    assert chosen and all(e.claimed is not None and e.score is not None for e in chosen)  # type: ignore[attr-defined]


async def test_ranked_by_claimed_scores_the_inflated_liar_wins_awards_honest_candidates_beat() -> None:
    graph, bus = _liar_graph(rank_by="claimed")
    for j in JOBS:
        await graph.decide(j)
    assert _beaten_awards(graph, bus)  # the check the default ranking passes fails here


async def _run_until_excluded(graph: ConsensusGraph, bus: EventBus) -> int:
    """Decide jobs until an agent is excluded; returns how many it took (past the bound: not detected)."""
    for count, j in enumerate(JOBS[:DETECTION_BOUND + 1], start=1):
        await graph.decide(j)
        if any(e.kind == "agent_excluded" for e in bus.events):
            return count
    return len(JOBS) + 1


async def test_an_inflated_liar_is_flagged_and_excluded_within_a_bounded_number_of_jobs() -> None:
    graph, world, bus = build()
    graph.agents[LIAR].behaviour = "inflated_scores"
    assert await _run_until_excluded(graph, bus) <= DETECTION_BOUND
    flagged = [e for e in bus.events if e.kind == "score_overclaimed"]
    assert flagged and {e.agent for e in flagged} == {LIAR}  # type: ignore[attr-defined]
    assert all(e.claimed - e.recomputed > SCORE_TOLERANCE for e in flagged)  # type: ignore[attr-defined]
    assert [e.agent for e in bus.events if e.kind == "agent_excluded"] == [LIAR]  # type: ignore[attr-defined]
    assert world.reputation.health(LIAR) == "excluded"
    assert summarize(bus.events)["scores_overclaimed"] == len(flagged)


async def test_an_inflated_liar_earns_its_reputation_back_once_its_fault_ends() -> None:
    graph, world, bus = build()
    graph.agents[LIAR].behaviour = "inflated_scores"
    assert await _run_until_excluded(graph, bus) <= DETECTION_BOUND
    lowest = world.reputation.scores[LIAR]
    graph.agents[LIAR].behaviour = None
    recovery = math.ceil((1.0 - lowest) / REWARD_GOOD_CONDUCT) + 1
    before = len(bus.events)
    for i in range(recovery):
        await graph.decide(job(f"after-{i}", kind=KINDS[i % len(KINDS)]))
    after = bus.events[before:]
    assert [e.agent for e in after if e.kind == "agent_readmitted"] == [LIAR]  # type: ignore[attr-defined]
    assert not [e for e in after if e.kind == "score_overclaimed"]
    assert world.reputation.scores[LIAR] == 1.0 and world.reputation.health(LIAR) == "healthy"


async def test_honest_heuristic_agents_never_over_claim() -> None:
    graph, world, bus = build()
    for j in JOBS:
        await graph.decide(j)
    assert not [e for e in bus.events if e.kind == "score_overclaimed"]
    assert all(s == 1.0 for s in world.reputation.scores.values())


def test_ranking_ignores_claims_and_breaks_ties_by_agent_then_placement() -> None:
    state = federation()
    j = job("t", kind="physics")
    graph, _, _ = build(state)
    honest = [p for a in ("compute-agent", "general-agent") if (p := _heuristic_proposal(graph, a, j)) is not None]
    worst = _heuristic_proposal(graph, "memory-agent", j, worst=True)
    assert worst is not None
    inflated = worst.model_copy(update={"score": 1.0})
    specialties = [a.specialty for a in graph.agents.values()]
    ranked = rank_candidates(state, j, [inflated, *reversed(honest)], specialties, {})
    assert ranked[0].proposal.agent == "compute-agent"  # same placement as general-agent: the lower id
    assert ranked[-1].proposal is inflated
    assert rank_candidates(state, j, [inflated, *honest], specialties, {}, "claimed")[0].proposal is inflated


def _heuristic_proposal(graph: ConsensusGraph, agent: str, j: Job, worst: bool = False) -> Proposal | None:
    from llm_sched.agents.heuristics import placement_options

    a = graph.agents[agent]
    options = placement_options(graph.world.state, j, a.specialty, graph.world.owner_reputation())
    if not options:
        return None
    o = options[-1 if worst else 0]
    return Proposal(agent=agent, job_id=j.id, placement=o.placement, score=o.score, reasoning="", via="heuristic")


# -- vote flipping ----------------------------------------------------------------------------------
def _seven() -> tuple[ConsensusGraph, EventBus, Reputation]:
    """The federation with two more (pool-less) voters: n = 7 tolerates f = 2 faulty agents."""
    graph, world, bus = build()
    extra = {"compute-agent-b": "compute", "general-agent-b": "general"}
    world.reputation = Reputation.fresh([*AGENTS, *extra])
    agents = {**graph.agents, **{a: SpecialistAgent(a, s, world) for a, s in extra.items()}}
    return ConsensusGraph(agents, world, bus), bus, world.reputation


async def test_vote_flipping_cannot_commit_an_infeasible_placement_nor_block_a_feasible_one() -> None:
    graph, bus, reputation = _seven()
    flipper = "memory-agent"
    graph.agents[LIAR].behaviour = "invalid_nodes"  # offers infeasible candidates for the flipper to back
    graph.agents[flipper].behaviour = "vote_flipping"
    decisions = [await graph.decide(j) for j in JOBS[:4]]
    for j, d in zip(JOBS, decisions, strict=False):
        assert d.outcome == "commit" and d.placement is not None  # every job here has feasible options
        assert check_placement(graph.world.state, j, d.placement).ok
    backed = [e for e in bus.events if e.kind == "reputation" and e.agent == flipper and e.new < e.old]  # type: ignore[attr-defined]
    assert backed and all(e.reason == "accepted a candidate that fails the check" for e in backed)  # type: ignore[attr-defined]
    assert reputation.scores[flipper] < SUSPECT_BELOW and reputation.health(flipper) != "healthy"
    assert math.isclose(1.0 - reputation.scores[flipper], PENALTY_ACCEPTED_INFEASIBLE * len(backed), abs_tol=1e-6)


async def test_a_lone_vote_flipper_facing_only_feasible_candidates_cannot_block_them() -> None:
    graph, world, bus = build()
    graph.agents["memory-agent"].behaviour = "vote_flipping"
    decisions = [await graph.decide(j) for j in JOBS[:3]]
    assert all(d.outcome == "commit" and d.rounds == 1 and d.accepts == graph.n - 1 for d in decisions)
    # Rejecting a feasible placement is a judgement an honest model may make too: no evidence.
    assert world.reputation.scores["memory-agent"] == 1.0


# -- the tolerance against the real model -----------------------------------------------------------
def test_no_honest_model_answer_in_the_shipped_runs_is_flagged_as_an_over_claim(cli: Cli) -> None:
    from llm_sched.core.events import read_jsonl

    for scenario in ("healthy", "byzantine", "recovery", "injection"):
        assert cli("--scenario", scenario).code == 0
    runs = sorted(p for p in (cli.cwd / "runs").iterdir() if p.is_dir())
    for run in runs:
        events = read_jsonl(run / "events.jsonl")
        proposals = {(e["job_id"], e["agent"]): e["proposal"] for e in events if e["kind"] == "proposal"}
        for flagged in (e for e in events if e["kind"] == "score_overclaimed"):
            assert proposals[(flagged["job_id"], flagged["agent"])]["byzantine"], (run.name, flagged)
