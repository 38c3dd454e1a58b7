"""Table-driven tests of Tendermint's rules (Algorithm 1) over message sequences.

Process 3 of n = 4 (q = 3, f = 1) is fed signed messages; the proposer of round r is r mod 4.
Each case lists the steps and what process 3 must have sent, locked and decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from llm_sched.protocols.messages import NIL, KeyRing, Kind, Message, Output, PlacementValue, Value, digest_of
from llm_sched.protocols.tendermint import TendermintCore
from llm_sched.transport.harness import PoolAwards

RING = KeyRing("tendermint-rules", range(4))
APP = PoolAwards()


def renamed(value: Value, name: str) -> Value:
    assert isinstance(value, PlacementValue)
    return replace(value, reason=name)


# Height 0 is the award of job-0: v, w and process 3's own value are three agents' feasible
# awards; bad is one the feasibility check rejects.
VALUES: dict[str, Value | None] = {
    "v": renamed(APP.propose_for(0)(0), "v"),
    "w": renamed(APP.propose_for(1)(0), "w"),
    "own": renamed(APP.propose_for(2)(0), "own"),
    "bad": renamed(APP.invalid(0), "infeasible"),
    "nil": None,
}
NAMES = {digest_of(v): k for k, v in VALUES.items()}


def P(sender: int, r: int, name: str, vr: int = -1) -> Message:
    value = VALUES[name]
    return RING.signer(sender).make(3, Kind.PROPOSAL, r, 0, digest_of(value), value, str(vr).encode())


def PV(sender: int, r: int, name: str) -> Message:
    return RING.signer(sender).make(3, Kind.PREVOTE, r, 0, digest_of(VALUES[name]))


def PC(sender: int, r: int, name: str) -> Message:
    return RING.signer(sender).make(3, Kind.PRECOMMIT, r, 0, digest_of(VALUES[name]))


def RELAY(sender: int, *msgs: Message) -> Message:
    """A SYNC reply: already-signed messages relayed by a peer."""
    return RING.signer(sender).make(3, Kind.SYNC_REPLY, 0, 0, NIL, proof=msgs)


@dataclass
class Case:
    name: str
    steps: list[Message | float]  # a float is a tick at that time (timeouts fire)
    sent: list[tuple[str, int, str]]  # (kind, round, value name) of process 3's votes, in order
    locked: tuple[int, str] = (-1, "nil")
    decided: str | None = None
    round: int | None = None
    evidence: bool = False  # the last prevote carried the lock's proof
    extra: dict[str, object] = field(default_factory=dict)


LOCK_V_R0 = [P(0, 0, "v"), PV(0, 0, "v"), PV(1, 0, "v")]

CASES = [
    Case("fresh valid proposal: prevote it (line 22)", [P(0, 0, "v")], [("prevote", 0, "v")]),
    Case("invalid proposal: prevote nil", [P(0, 0, "bad")], [("prevote", 0, "nil")]),
    Case("proposal from a non-proposer is ignored, timeout prevotes nil",
         [P(1, 0, "v"), 1_000.0], [("prevote", 0, "nil")]),
    Case("q prevotes lock the value and precommit it (line 36)", LOCK_V_R0,
         [("prevote", 0, "v"), ("precommit", 0, "v")], locked=(0, "v")),
    Case("locked: a fresh other value gets nil, with the lock's evidence",
         LOCK_V_R0 + [PV(1, 1, "nil"), PV(2, 1, "nil"), P(1, 1, "w")],
         [("prevote", 0, "v"), ("precommit", 0, "v"), ("prevote", 1, "nil"), ("precommit", 1, "nil")],
         locked=(0, "v"), evidence=True),
    Case("locked: the locked value itself is prevoted again",
         LOCK_V_R0 + [PV(1, 1, "nil"), PV(2, 1, "nil"), P(1, 1, "v")],
         [("prevote", 0, "v"), ("precommit", 0, "v"), ("prevote", 1, "v")], locked=(0, "v")),
    Case("a proof of lock newer than our lock unlocks (line 28)",
         LOCK_V_R0 + [PV(0, 1, "w"), PV(1, 1, "w"), PV(2, 1, "w"), PV(0, 2, "w"), P(2, 2, "w", vr=1)],
         [("prevote", 0, "v"), ("precommit", 0, "v"), ("prevote", 2, "w")], locked=(0, "v"), round=2),
    Case("a proof of lock older than our lock is refused",
         [PV(0, 0, "w"), PV(1, 0, "w"), PV(2, 0, "w"),  # a POL for w in round 0 (no proposal seen)
          P(1, 1, "v"), PV(2, 1, "v"), PV(0, 1, "v"),  # round 1: lock v
          P(2, 2, "w", vr=0), PV(0, 2, "nil")],  # round 2: w backed only by round 0
         [("prevote", 1, "v"), ("precommit", 1, "v"), ("prevote", 2, "nil")],
         locked=(1, "v"), round=2, evidence=True),
    Case("a re-proposal waits for its proof of lock, then times out to nil",
         [P(1, 1, "w", vr=0), PV(2, 1, "nil"), 1_000.0], [("prevote", 1, "nil")], round=1),
    Case("q nil prevotes: precommit nil (line 44)",
         [P(0, 0, "v"), PV(0, 0, "nil"), PV(1, 0, "nil"), PV(2, 0, "nil")],
         [("prevote", 0, "v"), ("precommit", 0, "nil")]),
    Case("proposal and q precommits decide, whatever our own votes (line 49)",
         [P(0, 0, "v"), PC(0, 0, "v"), PC(1, 0, "v"), PC(2, 0, "v")],
         [("prevote", 0, "v")], decided="v"),
    Case("f+1 messages of a later round: jump to it (line 55)",
         [PV(1, 5, "nil"), PV(2, 5, "nil")], [], round=5),
    Case("f messages of a later round are not enough", [PV(1, 5, "nil")], [], round=0),
    Case("an equivocating proposer's other proposal, relayed with q precommits, decides",
         [P(0, 0, "v"), RELAY(1, P(0, 0, "w"), PC(0, 0, "w"), PC(1, 0, "w"), PC(2, 0, "w"))],
         [("prevote", 0, "v")], decided="w"),
    Case("a relayed message with a bad MAC is ignored",
         [RELAY(1, RING.signer(1).seal(PC(0, 0, "w")), PC(1, 0, "w"), PC(2, 0, "w"), P(0, 0, "w"))],
         [("prevote", 0, "w")], decided=None),
]


def run(case: Case) -> tuple[TendermintCore, list[Message], list[tuple[int, Value]]]:
    core = TendermintCore(3, range(4), 1, RING.signer(3), RING, lambda h: VALUES["own"], APP.validate)
    votes: list[Message] = []
    decisions: list[tuple[int, Value]] = []
    core.tick(0.0)
    for step in case.steps:
        out = core.tick(step) if isinstance(step, float) else core.step(step)
        votes += [m for m in out.messages if m.receiver == 0 and m.kind in (Kind.PREVOTE, Kind.PRECOMMIT)]
        decisions += out.decisions
    return core, votes, decisions


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule(case: Case) -> None:
    core, votes, decisions = run(case)
    assert [(m.kind.value, m.view, NAMES[m.digest]) for m in votes] == case.sent
    if case.decided is None:
        assert decisions == []
        assert (core.locked_round, NAMES[digest_of(core.locked_value)]) == case.locked
    else:
        assert decisions == [(0, VALUES[case.decided])]
    if case.round is not None:
        assert core.round == case.round
    if case.evidence:
        proof = [m for m in votes if m.kind is Kind.PREVOTE][-1].proof
        assert proof and proof[0].kind is Kind.PROPOSAL and proof[0].digest == digest_of(core.locked_value)
        assert sum(m.kind is Kind.PREVOTE for m in proof) == core.q


def test_proposer_rotates_by_height_and_round() -> None:
    core = TendermintCore(0, range(4), 3, RING.signer(0), RING, lambda h: VALUES["own"], APP.validate)
    assert [core.proposer(h, r) for h, r in [(0, 0), (0, 1), (1, 0), (2, 3)]] == [0, 1, 1, 1]


@pytest.mark.parametrize("r", [0, 1, 4])
def test_timeout_propose_grows_with_the_round(r: int) -> None:
    core = TendermintCore(3, range(4), 1, RING.signer(3), RING, lambda h: VALUES["own"], APP.validate)
    core.tick(0.0)
    if r:
        core.step(PV(1, r, "nil"))
        core.step(PV(2, r, "nil"))  # jump to round r at time 0
    cfg = core.config
    due = cfg.timeout_propose + r * cfg.timeout_delta
    early = core.tick(due - 0.5).messages
    late = core.tick(due).messages
    assert not [m for m in early if m.kind is Kind.PREVOTE]
    assert [m for m in late if m.kind is Kind.PREVOTE and m.view == r]


def test_restart_does_not_vote_twice() -> None:
    core, votes, _ = run(CASES[0])
    again = TendermintCore(3, range(4), 1, RING.signer(3), RING, lambda h: VALUES["own"], APP.validate,
                           restore=core.persisted())
    out = again.tick(0.0)
    out.extend(again.step(P(0, 0, "w")))  # an equivocating proposer tries its luck after the restart
    assert not [m for m in out.messages if m.kind is Kind.PREVOTE]


# --- relays standing in for the paper's gossip (never in the normal case) ---------------------------


def relayed(out_messages: list[Message], to: int) -> list[Message]:
    return [m for m in out_messages if m.kind is Kind.SYNC_REPLY and m.receiver == to]


def fresh_core(slots: int = 1) -> TendermintCore:
    core = TendermintCore(3, range(4), slots, RING.signer(3), RING, lambda h: VALUES["own"], APP.validate)
    core.tick(0.0)
    return core


def test_normal_case_precommit_carries_no_proof() -> None:
    core = fresh_core()
    out = Output()
    for m in LOCK_V_R0:
        out.extend(core.step(m))
    precommits = [m for m in out.messages if m.kind is Kind.PRECOMMIT]
    assert precommits and all(m.proof == () for m in precommits)


def test_precommit_in_a_disputed_round_carries_its_proof_of_lock() -> None:
    core = fresh_core()
    out = Output()
    for m in [P(0, 0, "v"), PV(2, 0, "nil"), PV(0, 0, "v"), PV(1, 0, "v")]:
        out.extend(core.step(m))
    (precommit,) = [m for m in out.messages if m.kind is Kind.PRECOMMIT and m.receiver == 0]
    assert NAMES[precommit.digest] == "v"
    assert precommit.proof[0].kind is Kind.PROPOSAL and sum(m.kind is Kind.PREVOTE for m in precommit.proof) == core.q


def test_a_dissenting_vote_gets_our_proof_of_lock_once() -> None:
    """Locked on v in round 0; process 2 prevotes nil in round 1 (it may be the next proposer and
    lack v's prevotes): it receives our proposal and q prevotes, once."""
    core = fresh_core()
    for m in LOCK_V_R0:
        core.step(m)
    out = core.step(PV(2, 1, "nil"))
    (bundle,) = relayed(out.messages, 2)
    assert [NAMES[m.digest] for m in bundle.proof if m.kind is Kind.PROPOSAL] == ["v"]
    assert sum(m.kind is Kind.PREVOTE for m in bundle.proof) == core.q
    assert relayed(core.step(PC(2, 1, "nil")).messages, 2) == []


def test_leaving_a_round_relays_the_precommits_that_ended_it() -> None:
    core = fresh_core()
    for m in [P(0, 0, "v"), PC(0, 0, "nil"), PC(1, 0, "nil"), PC(2, 0, "nil")]:
        core.step(m)
    out = core.tick(1_000.0)  # timeoutPrecommit: on to round 1
    assert core.round == 1
    bundles = [m for m in out.messages if m.kind is Kind.SYNC_REPLY]
    assert sorted(m.receiver for m in bundles) == [0, 1, 2]
    assert all(sorted(x.sender for x in m.proof) == [0, 1, 2] and {x.view for x in m.proof} == {0} for m in bundles)


def test_a_laggard_gets_the_decision_a_late_vote_does_not() -> None:
    core = fresh_core(slots=2)
    for m in [P(0, 0, "v"), PC(0, 0, "v"), PC(1, 0, "v"), PC(2, 0, "v")]:
        core.step(m)
    assert core.height == 1
    assert relayed(core.step(PC(1, 0, "v")).messages, 1) == []  # a late vote of the deciding round
    (proof,) = relayed(core.step(PV(1, 2, "nil")).messages, 1)  # still trying rounds of height 0
    assert proof.slot == 0 and [m.kind for m in proof.proof] == [Kind.PROPOSAL] + [Kind.PRECOMMIT] * core.q


def test_f_plus_1_peers_at_later_heights_make_a_laggard_ask_at_once() -> None:
    core = fresh_core(slots=3)
    later = [RING.signer(s).make(3, Kind.PREVOTE, 0, 2, NIL) for s in (0, 1)]
    assert [m for m in core.step(later[0]).messages if m.kind is Kind.SYNC] == []  # f: not yet
    asks = [m for m in core.step(later[1]).messages if m.kind is Kind.SYNC]
    assert sorted(m.receiver for m in asks) == [0, 1, 2] and asks[0].slot == 0
