"""Signed votes and quorum certificates: a vote counts only when its agent signed exactly it; forgers
and equivocators are refused, penalised and detected, and earn reputation back once they stop; every
commit carries a certificate anyone can check with the public keys alone."""

from __future__ import annotations

import math

import pytest

from llm_sched.agents.reputation import EXCLUDE_BELOW, PENALTY_BAD_VOTE, PENALTY_EQUIVOCATION, REWARD_GOOD_CONDUCT
from llm_sched.agents.specialist import SpecialistAgent
from llm_sched.core import Job, Placement
from llm_sched.core.decisions import Proposal, Vote
from llm_sched.core.events import EventBus, read_jsonl
from llm_sched.core.signing import PublicKeys, VoteKey, placement_digest
from llm_sched.orchestration.graph import ConsensusGraph
from llm_sched.protocols.certificate import check_certificate, screen
from tests.agents.fixtures import AGENTS, build, federation, job
from tests.conftest import Cli

LIAR = "storage-agent"
KINDS = ("physics", "genomics", "analytics", "climate", "graph", "fusion", "ai", "cosmology")


class GhostProposer(SpecialistAgent):
    """Proposes nodes that do not exist, for a job nothing can hold: the only candidate is infeasible."""

    def _propose(self, s: dict) -> dict:  # type: ignore[override]
        j = s["job"]
        ghosts = Placement(job_id=j.id, pool="cpu-pool", nodes=tuple(f"ghost-{i}" for i in range(j.nodes)))
        return {"result": Proposal(agent=self.agent_id, job_id=j.id, placement=ghosts, score=0.5,
                                   reasoning="idle nodes", via="heuristic")}


def _with_liar(behaviour: str, cls: type[SpecialistAgent] = SpecialistAgent) -> tuple[ConsensusGraph, EventBus]:
    graph, world, bus = build()
    liar = cls(LIAR, AGENTS[LIAR][0], world, behaviour=behaviour)
    return ConsensusGraph({**graph.agents, LIAR: liar}, world, bus), bus


def _too_big() -> Job:
    return job("huge", nodes=40)  # more nodes than any pool has: every honest agent abstains


def _members(graph: ConsensusGraph) -> list[str]:
    return sorted(graph.agents)


async def test_every_commit_carries_a_certificate_that_checks_with_the_public_keys_alone() -> None:
    graph, _, _ = build()
    for i, kind in enumerate(KINDS[:3]):
        d = await graph.decide(job(f"j{i}", kind=kind))
        assert d.outcome == "commit" and d.placement is not None and d.certificate is not None
        assert len(d.certificate.signatures) == d.accepts >= graph.quorum
        # Checked with the public keys only, rebuilt from their stored form: no trust in the tally.
        keys = PublicKeys(graph.keys.run, graph.keys.table())
        assert check_certificate(d.certificate, keys, d.job_id, d.placement.pool, d.placement.nodes,
                                 _members(graph)) is None


async def test_a_certificate_for_another_placement_or_with_an_altered_signature_fails() -> None:
    graph, _, _ = build()
    d = await graph.decide(job("j0"))
    assert d.placement is not None and d.certificate is not None
    cert, members = d.certificate, _members(graph)
    moved = tuple(reversed(d.placement.nodes))
    assert "digest" in str(check_certificate(cert, graph.keys, d.job_id, d.placement.pool, moved, members))
    first = cert.signatures[0]
    flipped = first.signature[:-1] + ("0" if first.signature[-1] != "0" else "1")
    bad = cert.model_copy(update={"signatures": (first.model_copy(update={"signature": flipped}),
                                                 *cert.signatures[1:])})
    assert f"signature of {first.agent} does not verify" in str(
        check_certificate(bad, graph.keys, d.job_id, d.placement.pool, d.placement.nodes, members))
    short = cert.model_copy(update={"signatures": cert.signatures[:graph.quorum - 1]})
    assert "fewer than the quorum" in str(
        check_certificate(short, graph.keys, d.job_id, d.placement.pool, d.placement.nodes, members))
    doubled = cert.model_copy(update={"signatures": (*cert.signatures[:graph.quorum - 1], cert.signatures[0])})
    assert "two signatures" in str(
        check_certificate(doubled, graph.keys, d.job_id, d.placement.pool, d.placement.nodes, members))
    # Keys from another run (fresh pairs for the same agents) verify none of these signatures.
    other = PublicKeys.of(graph.keys.run, {a: VoteKey(a, graph.keys.run, 0) for a in members})
    assert "does not verify" in str(check_certificate(cert, other, d.job_id, d.placement.pool, d.placement.nodes,
                                                      members))


async def test_votes_forged_in_honest_agents_names_do_not_count_and_cannot_commit_a_ghost_placement() -> None:
    class GhostForger(GhostProposer):
        pass

    graph, bus = _with_liar("forge", GhostForger)
    d = await graph.decide(_too_big())
    assert d.outcome == "reject"
    refused = [e for e in bus.events if e.kind == "vote_refused"]
    assert refused and all(e.sender == LIAR and e.claimed != LIAR and "does not verify" in e.reason
                           for e in refused)
    assert {e.claimed for e in refused} == set(AGENTS) - {LIAR}
    tallies = [e for e in bus.events if e.kind == "tally"]
    assert tallies and all(t.accepts == 1 for t in tallies)  # the forger's own accept, and nothing else


async def test_with_signatures_unchecked_the_forgeries_frame_every_honest_agent_as_an_equivocator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: accept any signature, and each forged accept stands beside its victim's
    own reject as two "signed" answers of one agent, so every honest vote is refused and penalised."""
    monkeypatch.setattr(PublicKeys, "verify", lambda *args, **kwargs: True)
    graph, bus = _with_liar("forge", GhostProposer)
    await graph.decide(_too_big())
    framed = {e.claimed for e in bus.events if e.kind == "vote_refused" and "equivocation" in e.reason}
    assert framed == set(AGENTS) - {LIAR}
    assert all(graph.world.reputation.scores[a] < 1.0 for a in framed)


async def test_an_equivocator_is_refused_and_its_two_signed_votes_prove_it() -> None:
    graph, bus = _with_liar("equivocate")
    d = await graph.decide(job("j0"))
    assert d.outcome == "commit" and d.certificate is not None
    assert LIAR not in {s.agent for s in d.certificate.signatures}
    (refusal,) = [e for e in bus.events if e.kind == "vote_refused"]
    assert refusal.sender == refusal.claimed == LIAR and "equivocation" in refusal.reason
    (cast,) = [e for e in bus.events if e.kind == "vote" and e.agent == LIAR]
    assert not cast.counted
    change = next(e for e in bus.events if e.kind == "reputation" and e.agent == LIAR)
    assert round(change.old - change.new, 4) == PENALTY_EQUIVOCATION
    # Both answers verify under the liar's key: anyone holding them holds the proof.
    assert d.placement is not None
    digest = placement_digest("j0", d.placement.pool, d.placement.nodes)
    key = graph.agents[LIAR].key
    assert key is not None
    for accept in (True, False):
        signature = key.sign("j0", 1, digest, accept)
        assert graph.keys.verify(LIAR, key.epoch, "j0", 1, digest, accept, signature)


@pytest.mark.parametrize(("behaviour", "penalty"), [("forge", PENALTY_BAD_VOTE), ("equivocate", PENALTY_EQUIVOCATION)])
async def test_a_vote_liar_is_excluded_within_a_bounded_number_of_jobs_and_earns_reputation_back(
        behaviour: str, penalty: float) -> None:
    graph, bus = _with_liar(behaviour)
    # Each job costs it the penalty; a forger's own (valid, feasible) accept still earns the reward,
    # an equivocator's refused votes earn nothing.
    net = penalty - (REWARD_GOOD_CONDUCT if behaviour == "forge" else 0.0)
    bound = math.ceil(round((1.0 - EXCLUDE_BELOW) / net, 6)) + 1
    for i in range(bound):
        await graph.decide(job(f"j{i}", kind=KINDS[i % len(KINDS)]))
    assert LIAR in {e.agent for e in bus.events if e.kind == "agent_excluded"}
    low = graph.world.reputation.scores[LIAR]
    graph.agents[LIAR].behaviour = None  # the fault ends
    for i in range(6):
        d = await graph.decide(job(f"r{i}", kind=KINDS[i % len(KINDS)]))
        assert d.certificate is not None and LIAR in {s.agent for s in d.certificate.signatures}
    assert graph.world.reputation.scores[LIAR] >= low + 6 * REWARD_GOOD_CONDUCT - 1e-9
    assert LIAR in {e.agent for e in bus.events if e.kind == "agent_readmitted"}


async def test_honest_runs_refuse_no_vote() -> None:
    graph, _, bus = build()
    for i, kind in enumerate(KINDS):
        await graph.decide(job(f"j{i}", kind=kind))
    assert not [e for e in bus.events if e.kind == "vote_refused"]
    assert all(e.counted for e in bus.events if e.kind == "vote")


def test_a_vote_moved_to_another_round_or_candidate_or_signed_by_another_key_is_refused() -> None:
    keys = {a: VoteKey(a, "run-1", 1) for a in AGENTS}
    public = PublicKeys.of("run-1", keys)
    state = federation()
    j = job("j0")
    placement = Placement(job_id="j0", pool="cpu-pool", nodes=tuple(n.id for n in state.pools["cpu-pool"].nodes[:2]))
    digest = placement_digest("j0", placement.pool, placement.nodes)
    def vote(agent: str, *, round_no: int = 1, d: str = digest, signer: str | None = None) -> Vote:
        key = keys[signer or agent]
        return Vote(agent=agent, job_id=j.id, round=round_no, accept=True, confidence=1.0, reasoning="", via="check",
                    digest=d, key_epoch=1, signature=key.sign(j.id, round_no, d, True, agent=agent))

    good = screen([("compute-agent", [vote("compute-agent")])], public, "j0", 1, digest)
    assert set(good.counted) == {"compute-agent"} and not good.refused
    for bad in (vote("compute-agent", round_no=2), vote("compute-agent", d="0" * 64),
                vote("compute-agent", signer="gpu-agent")):
        out = screen([("compute-agent", [bad])], public, "j0", 1, digest)
        assert not out.counted and out.refused and out.refused[0].sender == "compute-agent"
    # The statement binds the run too: the same vote checked as another run's fails.
    assert not PublicKeys("run-2", public.table()).verify("compute-agent", 1, "j0", 1, digest, True,
                                                          vote("compute-agent").signature)


def test_the_shipped_signatures_scenario_replayed_from_smollm2_refuses_the_liars_and_verifies(cli: Cli) -> None:
    result = cli("--scenario", "signatures")
    assert result.code == 0, result.text
    assert "answers: replaying signatures-local.yaml" in result.out
    (run,) = [p for p in (cli.cwd / "runs").iterdir() if p.is_dir()]
    events = read_jsonl(run / "events.jsonl")
    refused = [e for e in events if e["kind"] == "vote_refused"]
    assert {e["sender"] for e in refused} == {"gpu-agent", "memory-agent"}
    assert {e["agent"] for e in events if e["kind"] == "agent_excluded"} == {"gpu-agent", "memory-agent"}
    assert all("equivocation" in e["reason"] for e in refused if e["sender"] == "gpu-agent")
    assert all("name: has a signature that does not verify" in e["reason"] for e in refused
               if e["sender"] == "memory-agent")
    # What the screen shows of the equivocator is its model's own answer; the contradicting copy is the
    # behaviour's and is only named in the refusal.
    shown = [e["vote"] for e in events if e["kind"] == "vote" and e["agent"] == "gpu-agent" and not e["counted"]]
    assert shown and not any(v["byzantine"] for v in shown)
    commits = [e["decision"] for e in events if e["kind"] == "decision" and e["decision"]["outcome"] == "commit"]
    assert commits and all(d["certificate"] for d in commits)
    verified = cli("--verify", run.name)
    assert verified.code == 0, verified.text
    assert f"{len(commits)} of {len(commits)} committed placements carry a valid quorum certificate" in verified.out


def test_a_genuine_vote_passed_on_by_another_agent_counts_once_as_its_signers() -> None:
    """Only the signature says whose a vote is: a copy relayed by another agent is the signer's vote,
    and two copies of one vote are one vote."""
    keys = {a: VoteKey(a, "run-1", 1) for a in AGENTS}
    public = PublicKeys.of("run-1", keys)
    digest = placement_digest("j0", "cpu-pool", ("cpu-pool-0", "cpu-pool-1"))
    own = Vote(agent="gpu-agent", job_id="j0", round=1, accept=True, confidence=1.0, reasoning="", via="check",
               digest=digest, key_epoch=1, signature=keys["gpu-agent"].sign("j0", 1, digest, True))
    relayed = screen([("compute-agent", [own])], public, "j0", 1, digest)
    assert relayed.counted == {"gpu-agent": own} and not relayed.refused and "gpu-agent" not in relayed.first
    both = screen([("gpu-agent", [own]), ("compute-agent", [own])], public, "j0", 1, digest)
    assert both.counted == {"gpu-agent": own} and not both.refused
