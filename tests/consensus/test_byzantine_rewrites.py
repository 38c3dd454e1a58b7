"""ByzantineCore lies in every protocol: what ``alter`` and ``vote-against`` (and ``mixed``) do to
the messages of weighted voting, bidding, negotiation and gossip, message by message, and what two
such liars achieve in the experiment runner against those four methods."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from llm_sched.protocols.bidding import bid_score
from llm_sched.protocols.messages import BROADCAST, NIL, AgentId, KeyRing, Kind, Message, Output, Value, digest_of
from llm_sched.protocols.weighted import ACCEPT, REJECT
from llm_sched.transport.harness import ByzantineCore, PoolAwards, inflated_score

APP = PoolAwards()
RING = KeyRing("byzantine-rewrites", range(4))
ME: AgentId = 1  # the Byzantine agent; 0, 2, 3 are honest
MINE = RING.signer(ME)
HONEST: Value = APP.propose_for(ME)(0)
LIES = {digest_of(APP.alternative(0)), digest_of(APP.invalid(0))}


class Canned:
    """An 'honest core' that sends what it is given."""

    node_id = ME

    def __init__(self) -> None:
        self.out: list[Message] = []

    def step(self, msg: Message) -> Output:
        return Output(list(self.out))

    def tick(self, now: float) -> Output:
        return Output(list(self.out))

    def next_deadline(self) -> float | None:
        return None

    def persisted(self) -> object:
        return None


def liar(behaviour: str, seed: int = 0) -> tuple[ByzantineCore, Canned]:
    inner = Canned()
    return ByzantineCore(inner, behaviour, MINE, range(4), APP, random.Random(seed)), inner


def send(core: ByzantineCore, inner: Canned, *messages: Message) -> list[Message]:
    inner.out = list(messages)
    return core.tick(0.0).messages


def proposal(kind: Kind, to: AgentId = 2, view: int = 0) -> Message:
    payload = b"0.5" if kind is Kind.BID else b"-1"  # a bid's score; a proposal's lock round (none)
    return MINE.make(to, kind, view, 0, digest_of(HONEST), HONEST, payload)


def authentic(m: Message) -> bool:
    """The MAC holds, nested originals included: the agent's own lie, not a forgery."""
    return RING.verify(m, deep=True)


# --- weighted voting, bidding, negotiation -------------------------------------------------------


@pytest.mark.parametrize("kind", [Kind.WEIGHTED_PROPOSAL, Kind.AWARD, Kind.OFFER, Kind.COUNTER, Kind.BID])
def test_alter_puts_the_lie_in_every_value_carrying_proposal(kind: Kind) -> None:
    core, inner = liar("alter")
    honest = [proposal(kind, to) for to in (0, 2, 3)]
    sent = send(core, inner, *honest)
    assert len(sent) == 3
    for m, h in zip(sent, honest, strict=True):
        assert m.value is not None and m.value != HONEST
        assert m.digest == digest_of(m.value) and m.digest in LIES
        assert (m.sender, m.receiver, m.kind, m.view, m.slot) == (h.sender, h.receiver, h.kind, h.view, h.slot)
        assert authentic(m)
    assert len({m.digest for m in sent}) == 1  # one lie per (kind, view, slot), whoever receives it
    if kind is Kind.BID:
        score = bid_score(sent[0])
        assert score is not None and score == inflated_score(0.5) > 1.0 > 0.5
    else:
        assert all(m.payload == h.payload for m, h in zip(sent, honest, strict=True))


def test_alter_leaves_votes_and_vote_against_leaves_proposals() -> None:
    vote = MINE.make(0, Kind.WEIGHTED_VOTE, 0, 0, digest_of(HONEST), payload=ACCEPT)
    commit = MINE.make(0, Kind.COMMIT_VOTE, 0, 0, digest_of(HONEST))
    core, inner = liar("alter")
    assert send(core, inner, vote, commit) == [vote, commit]
    offer = proposal(Kind.OFFER)
    core, inner = liar("vote-against")
    assert send(core, inner, offer) == [offer]


@pytest.mark.parametrize(("honest", "lie"), [(ACCEPT, REJECT), (REJECT, ACCEPT)])
def test_vote_against_flips_weighted_votes(honest: bytes, lie: bytes) -> None:
    core, inner = liar("vote-against")
    vote = MINE.make(0, Kind.WEIGHTED_VOTE, 2, 0, digest_of(HONEST), payload=honest)
    (m,) = send(core, inner, vote)
    assert m.payload == lie and m.digest == vote.digest  # the same proposal, the opposite verdict
    assert (m.sender, m.receiver, m.view, m.slot) == (ME, 0, 2, 0)
    assert authentic(m)


def test_vote_against_names_the_lie_in_commit_votes() -> None:
    core, inner = liar("vote-against")
    votes = [MINE.make(0, Kind.COMMIT_VOTE, 1, 0, digest_of(HONEST)) for _ in range(2)]
    sent = send(core, inner, *votes)
    assert [m.digest in LIES for m in sent] == [True, True]
    assert sent[0] == sent[1] and authentic(sent[0])


def test_a_counter_travels_as_the_same_lie_inside_new_round() -> None:
    core, inner = liar("alter")
    counter = proposal(Kind.COUNTER, to=0)
    (sent,) = send(core, inner, counter)
    report = MINE.make(2, Kind.NEW_ROUND, 1, 0, NIL, payload=b"-1", proof=(counter,))
    (carried,) = send(core, inner, report)
    assert sent.digest in LIES and carried.proof == (sent,)
    assert authentic(carried)


# --- gossip ----------------------------------------------------------------------------------------


def originals() -> dict[str, Message]:
    """Slot 0: our proposal, agent 2's vote for it, agent 3's proposal; slot 1: our vote."""
    other = APP.propose_for(3)(0)
    return {
        "own proposal": MINE.make(BROADCAST, Kind.GOSSIP_PROPOSAL, 0, 0, digest_of(HONEST), HONEST),
        "their vote": RING.signer(2).make(BROADCAST, Kind.GOSSIP_VOTE, 0, 0, digest_of(HONEST)),
        "their proposal": RING.signer(3).make(BROADCAST, Kind.GOSSIP_PROPOSAL, 1, 0, digest_of(other), other),
        "own vote": MINE.make(BROADCAST, Kind.GOSSIP_VOTE, 0, 1, digest_of(APP.propose_for(0)(1))),
    }


def envelope(to: AgentId, slot: int, *carried: Message, kind: Kind = Kind.GOSSIP, ids: bytes = b"") -> Message:
    return MINE.make(to, kind, 0, slot, NIL, payload=ids, proof=carried)


def test_alter_rewrites_our_gossiped_proposal_the_same_in_every_envelope() -> None:
    o = originals()
    core, inner = liar("alter")
    first = envelope(2, 0, o["own proposal"], o["their vote"])
    second = envelope(3, 0, o["their vote"], o["their proposal"], o["own proposal"])
    a, b = send(core, inner, first, second)
    lie = a.proof[0]
    assert lie.sender == ME and lie.kind is Kind.GOSSIP_PROPOSAL and (lie.view, lie.slot) == (0, 0)
    assert lie.value is not None and lie.digest == digest_of(lie.value) in LIES
    assert b.proof[2] == lie  # the same signed lie, byte for byte, in the other envelope
    assert a.proof[1] is o["their vote"] and b.proof[:2] == (o["their vote"], o["their proposal"])
    assert (a.receiver, b.receiver) == (2, 3) and all(map(authentic, (a, b, lie)))
    # later envelopes, pulls included, carry it too; a pull's list of ids names the lie, not the truth
    ids = o["own proposal"].mac + o["their vote"].mac
    (pull,) = send(core, inner, envelope(0, 0, o["own proposal"], kind=Kind.GOSSIP_PULL, ids=ids))
    assert pull.proof == (lie,) and pull.payload == lie.mac + o["their vote"].mac and authentic(pull)
    # our vote is not a proposal: alter leaves it, and an envelope with nothing of ours goes as it was
    mine, theirs = envelope(0, 1, o["own vote"]), envelope(0, 0, o["their vote"], o["their proposal"])
    out = send(core, inner, mine, theirs)
    assert out[0] is mine and out[1] is theirs


def test_vote_against_rewrites_our_gossiped_vote_the_same_in_every_envelope() -> None:
    o = originals()
    core, inner = liar("vote-against")
    sent = send(core, inner, envelope(2, 1, o["own vote"]), envelope(3, 1, o["own vote"]),
                envelope(0, 0, o["own proposal"], o["their vote"]))
    lie = sent[0].proof[0]
    assert lie.kind is Kind.GOSSIP_VOTE and lie.sender == ME and lie.slot == 1
    assert lie.digest != o["own vote"].digest and lie.digest in {digest_of(APP.alternative(1)),
                                                                   digest_of(APP.invalid(1))}
    assert sent[1].proof == (lie,) and all(map(authentic, sent))
    assert sent[2].proof == (o["own proposal"], o["their vote"])  # proposals are alter's business


@pytest.mark.parametrize("seed", range(6))
def test_mixed_decides_once_per_original_not_per_envelope(seed: int) -> None:
    o = originals()
    core, inner = liar("mixed", seed)
    carried = [o["own proposal"], o["their vote"]]
    sent = send(core, inner, *(envelope(p, 0, *carried) for p in (0, 2, 3) * 10))
    real = [m for m in sent if authentic(m)]  # forged copies fail the check and are dropped anyway
    assert 0 < len(real) < 30  # some envelopes withheld, the rest sent
    versions = {m.proof[0] for m in real}
    assert len(versions) == 1, "our proposal went out in two versions: equivocation"
    assert all(m.proof[1] is o["their vote"] for m in real)


def test_mixed_lies_in_some_runs_and_tells_the_truth_in_others() -> None:
    o = originals()
    outcomes = set()
    for seed in range(30):
        core, inner = liar("mixed", seed)
        sent = [m for m in send(core, inner, envelope(2, 0, o["own proposal"])) if authentic(m)]
        outcomes.update(m.proof[0].digest in LIES for m in sent)
    assert outcomes == {True, False}


# --- the experiment runner ----------------------------------------------------------------------------


def test_two_liars_against_the_four_newer_methods_in_the_experiment_runner(tmp_path: Path) -> None:
    from llm_sched.config import Settings
    from llm_sched.experiments.config import load_experiment
    from llm_sched.experiments.experiment import run_experiment
    from llm_sched.protocols.registry import METHODS, OPTIONAL_SKIPPED

    methods = ("weighted", "bidding", "negotiation", "gossip")
    missing = [m for m in methods if m not in METHODS]
    if missing:
        pytest.skip(f"not available: {[(m, OPTIONAL_SKIPPED.get(m)) for m in missing]}")
    # 7 jobs at n = 7: every agent proposes (coordinates, announces, offers) in one slot's round 0
    config = load_experiment(None, {"out": str(tmp_path / "out"), "methods": ",".join(methods), "agents": 7,
                                    "byzantine": 2, "byzantine_behaviours": "alter,vote-against", "jobs": 7,
                                    "repetitions": 1, "seed": 0})
    result = run_experiment(config, Settings(runs_dir=tmp_path / "runs"))
    logs = json.loads((result.folder / "fault_logs.json").read_text())
    measured = {}
    for method in methods:
        (run,) = result.runs[method]
        assert sorted(b["behaviour"] for b in run["byzantine_agents"]) == ["alter", "vote-against"]
        (log,) = logs[method]
        changed = {f["type"]: f["effects"]["messages_changed"] for f in log["faults"]}
        s = result.summaries[method]
        measured[method] = (changed, s["every_decision_reached"], s["safety_violations"])
        assert changed["alter"] > 0 and changed["vote-against"] > 0, (method, changed)
        assert s["safety_violations"] == 0 and not run["violations"], (method, run["violations"])
        assert s["every_decision_reached"], (method, [j["outcome"] for j in run["jobs"]])
        assert all(j["decided_by"] == j["honest_up"] == 5 for j in run["jobs"])
    print(measured)
