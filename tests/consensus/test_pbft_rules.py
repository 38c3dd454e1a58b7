"""Table-driven tests of PBFT's rules over message sequences: certificates across view changes.

n = 4 (q = 3, f = 1); the primary of view v is replica v mod 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from llm_sched.protocols.messages import (
    BROADCAST,
    NIL,
    KeyRing,
    Kind,
    Message,
    Output,
    PlacementValue,
    Value,
    digest_of,
)
from llm_sched.protocols.pbft import PbftCore
from llm_sched.transport.harness import PoolAwards

RING = KeyRing("pbft-rules", range(4))
APP = PoolAwards()


def award(agent: int, slot: int, name: str) -> Value:
    """A feasible value: agent ``agent``'s award for the slot, renamed so that every name differs."""
    value = APP.propose_for(agent)(slot)
    assert isinstance(value, PlacementValue)
    return replace(value, reason=name)


VALUES: dict[str, Value] = {
    "v": award(0, 0, "v"),
    "w": award(1, 0, "w"),
    "v1": award(1, 1, "v1"),
    "fresh0": award(4, 0, "fresh"),
    "fresh1": award(4, 1, "fresh"),
}
INFEASIBLE = APP.invalid(0)
NAMES = {digest_of(v): k for k, v in VALUES.items()}


def fresh(slot: int) -> Value:
    return VALUES[f"fresh{slot}"]


def core(node: int) -> PbftCore:
    c = PbftCore(node, range(4), 2, RING.signer(node), RING, fresh, APP.validate)
    c.tick(0.0)
    return c


def pp(view: int, slot: int, name: str, receiver: int = BROADCAST) -> Message:
    value = VALUES[name]
    return RING.signer(view % 4).make(receiver, Kind.PRE_PREPARE, view, slot, digest_of(value), value)


def vote(kind: Kind, sender: int, view: int, slot: int, name: str, receiver: int = BROADCAST) -> Message:
    return RING.signer(sender).make(receiver, kind, view, slot, digest_of(VALUES[name]))


def prepared(view: int, slot: int, name: str) -> tuple[Message, ...]:
    """A prepared certificate: the pre-prepare and q-1 = 2 prepares from backups."""
    backups = [r for r in range(4) if r != view % 4][:2]
    return (pp(view, slot, name), *(vote(Kind.PREPARE, b, view, slot, name) for b in backups))


def committed(view: int, slot: int, name: str) -> tuple[Message, ...]:
    """A commit certificate: the pre-prepare and q = 3 commits."""
    return (pp(view, slot, name), *(vote(Kind.COMMIT, r, view, slot, name) for r in range(3)))


def vc(sender: int, view: int, *certs: tuple[Message, ...], receiver: int = 2) -> Message:
    proof = tuple(m for cert in certs for m in cert)
    return RING.signer(sender).make(receiver, Kind.VIEW_CHANGE, view, 0, NIL, proof=proof)


def o_set(out: Output) -> dict[int, str]:
    nv = [m for m in out.messages if m.kind is Kind.NEW_VIEW]
    assert nv, "no new-view sent"
    return {m.slot: NAMES[m.digest] for m in nv[0].proof if m.kind is Kind.PRE_PREPARE}


# --- the new primary's choice -------------------------------------------------------------------


@dataclass
class PlanCase:
    name: str
    from_0: Sequence[tuple[Message, ...]]  # certificates in replica 0's view-change for view 2
    from_3: Sequence[tuple[Message, ...]]
    reproposed: dict[int, str]
    decided: dict[int, str] = field(default_factory=dict)


PLAN_CASES = [
    PlanCase("no certificates: nothing to re-propose", [], [], {}),
    PlanCase("a prepared certificate is re-proposed", [prepared(0, 0, "v")], [], {0: "v"}),
    PlanCase("the highest view's certificate wins", [prepared(0, 0, "v")], [prepared(1, 0, "w")], {0: "w"}),
    PlanCase("order of reports does not matter", [prepared(1, 0, "w")], [prepared(0, 0, "v")], {0: "w"}),
    PlanCase("slots are chosen independently", [prepared(0, 0, "v")], [prepared(1, 1, "v1")], {0: "v", 1: "v1"}),
    PlanCase("a commit certificate decides the slot outright",
             [committed(0, 0, "v")], [prepared(0, 1, "v1")], {1: "v1"}, decided={0: "v"}),
]


@pytest.mark.parametrize("case", PLAN_CASES, ids=[c.name for c in PLAN_CASES])
def test_new_primary_carries_certificates(case: PlanCase) -> None:
    new_primary = core(2)
    out = new_primary.step(vc(0, 2, *case.from_0))
    out.extend(new_primary.step(vc(3, 2, *case.from_3)))  # f+1 ask for view 2: join, then lead it
    assert new_primary.view == 2 and new_primary.active
    assert o_set(out) == case.reproposed
    assert {s: NAMES[digest_of(v)] for s, v in out.decisions} == case.decided
    pre_prepares = {m.slot: NAMES[m.digest] for m in out.messages if m.kind is Kind.PRE_PREPARE}
    for slot in range(2):  # slots neither decided nor re-proposed get a fresh proposal
        if slot not in case.reproposed and slot not in case.decided:
            assert pre_prepares[slot] == f"fresh{slot}"


def test_forged_certificate_voids_the_view_change() -> None:
    bad_prepare = RING.signer(3).seal(vote(Kind.PREPARE, 1, 0, 0, "w"))  # claims replica 1
    forged = (pp(0, 0, "w"), bad_prepare, vote(Kind.PREPARE, 3, 0, 0, "w"))
    new_primary = core(2)
    out = new_primary.step(vc(0, 2))
    out.extend(new_primary.step(vc(3, 2, forged)))
    assert new_primary.view == 0 and not [m for m in out.messages if m.kind is Kind.NEW_VIEW]


# --- a replica checking a new-view --------------------------------------------------------------


def new_view(sender: int, view: int, vcs: Sequence[Message], reproposals: dict[int, str]) -> Message:
    o = tuple(
        RING.signer(sender).make(BROADCAST, Kind.PRE_PREPARE, view, s, digest_of(VALUES[n]), VALUES[n])
        for s, n in reproposals.items()
    )
    return RING.signer(sender).make(3, Kind.NEW_VIEW, view, 0, NIL, proof=tuple(vcs) + o)


QUORUM_OF_VCS = [vc(0, 2, prepared(0, 0, "v"), receiver=3), vc(1, 2, receiver=3), vc(2, 2, receiver=3)]


@pytest.mark.parametrize(
    ("name", "message", "accepted"),
    [
        ("honest new-view", new_view(2, 2, QUORUM_OF_VCS, {0: "v"}), True),
        ("ignores the prepared certificate", new_view(2, 2, QUORUM_OF_VCS, {0: "w"}), False),
        ("omits the prepared slot", new_view(2, 2, QUORUM_OF_VCS, {}), False),
        ("adds a slot nobody prepared", new_view(2, 2, QUORUM_OF_VCS, {0: "v", 1: "v1"}), False),
        ("fewer than q view-changes", new_view(2, 2, QUORUM_OF_VCS[:2], {0: "v"}), False),
        ("not from the view's primary", new_view(1, 2, QUORUM_OF_VCS, {0: "v"}), False),
    ],
)
def test_replica_checks_the_new_view(name: str, message: Message, accepted: bool) -> None:
    replica = core(3)
    out = replica.step(message)
    prepares = [m for m in out.messages if m.kind is Kind.PREPARE and m.receiver == 0]
    if accepted:
        assert replica.view == 2 and replica.active
        assert [(m.view, m.slot, NAMES[m.digest]) for m in prepares] == [(2, 0, "v")]
    else:
        assert replica.view == 0 and not prepares


# --- the normal case, step by step --------------------------------------------------------------


def test_prepared_certificate_goes_into_the_view_change() -> None:
    """Replica 2 prepares v in view 0 (no commits arrive); its view-change proves it."""
    replica = core(2)
    out = replica.step(pp(0, 0, "v", receiver=2))
    assert [NAMES[m.digest] for m in out.messages if m.kind is Kind.PREPARE and m.receiver == 0] == ["v"]
    out = replica.step(vote(Kind.PREPARE, 1, 0, 0, "v", receiver=2))
    assert [m.kind for m in out.messages if m.receiver == 0] == [Kind.COMMIT]  # prepared: commit
    out = replica.tick(1_000.0)  # no commits: the primary is suspected
    vcs = [m for m in out.messages if m.kind is Kind.VIEW_CHANGE]
    assert len(vcs) == 3 and vcs[0].view == 1
    kinds = sorted((m.kind.value, NAMES[m.digest]) for m in vcs[0].proof)
    assert kinds == [("pre-prepare", "v"), ("prepare", "v"), ("prepare", "v")]


@pytest.mark.parametrize(
    ("name", "steps", "decided"),
    [
        ("pre-prepare, prepares and q commits decide",
         [pp(0, 0, "v", 3), vote(Kind.PREPARE, 1, 0, 0, "v", 3), vote(Kind.COMMIT, 0, 0, 0, "v", 3),
          vote(Kind.COMMIT, 1, 0, 0, "v", 3)], "v"),
        ("commits before prepared do not decide",
         [pp(0, 0, "v", 3)] + [vote(Kind.COMMIT, r, 0, 0, "v", 3) for r in range(3)], None),
        ("a prepare from the primary does not count",
         [pp(0, 0, "v", 3), vote(Kind.PREPARE, 0, 0, 0, "v", 3)]
         + [vote(Kind.COMMIT, r, 0, 0, "v", 3) for r in range(3)], None),
        ("a second pre-prepare for the slot is ignored",
         [pp(0, 0, "v", 3), pp(0, 0, "w", 3), vote(Kind.PREPARE, 1, 0, 0, "w", 3)]
         + [vote(Kind.COMMIT, r, 0, 0, "w", 3) for r in range(3)], None),
        ("an infeasible value is never prepared",
         [RING.signer(0).make(3, Kind.PRE_PREPARE, 0, 0, digest_of(INFEASIBLE), INFEASIBLE)], None),
    ],
)
def test_normal_case_rules(name: str, steps: list[Message], decided: str | None) -> None:
    replica = core(3)
    out = Output()
    for m in steps:
        out.extend(replica.step(m))
    assert [NAMES[digest_of(v)] for _, v in out.decisions] == ([decided] if decided else [])


def test_infeasible_value_gets_no_prepare() -> None:
    bad = INFEASIBLE
    replica = core(3)
    out = replica.step(RING.signer(0).make(3, Kind.PRE_PREPARE, 0, 0, digest_of(bad), bad))
    assert not [m for m in out.messages if m.kind is Kind.PREPARE]


# --- timers ---------------------------------------------------------------------------------------


def three_slot_replica(node: int) -> PbftCore:
    c = PbftCore(node, range(4), 3, RING.signer(node), RING, fresh, APP.validate)
    c.tick(0.0)
    return c


def test_a_decision_sets_the_next_timeout_to_twice_what_it_took() -> None:
    """Base timeout 20. Replica 3 decides slot 0 15 units after its timer started: the next timeout
    is the first base x 2^k of at least 30, i.e. 40 (not the base again). A slot learned from a
    peer's certificate leaves the level alone."""
    replica = three_slot_replica(3)
    base = replica.config.base_timeout
    replica.tick(15.0)
    out = Output()
    for m in [pp(0, 0, "v", 3), vote(Kind.PREPARE, 1, 0, 0, "v", 3), vote(Kind.COMMIT, 0, 0, 0, "v", 3),
              vote(Kind.COMMIT, 1, 0, 0, "v", 3)]:
        out.extend(replica.step(m))
    assert [s for s, _ in out.decisions] == [0]
    assert replica.next_deadline() == 15.0 + 2 * base
    replica.tick(16.0)
    learned = RING.signer(1).make(3, Kind.DECIDED, 0, 0, NIL, proof=committed(0, 1, "v1"))
    assert [s for s, _ in replica.step(learned).decisions] == [1]
    assert replica.next_deadline() == 16.0 + 2 * base
    assert replica.decided_views == {0: 0, 1: 0}


def test_joining_f_plus_1_view_changes_doubles_the_timeout() -> None:
    replica = three_slot_replica(3)
    replica.tick(5.0)
    replica.step(vc(0, 1, receiver=3))
    replica.step(vc(1, 1, receiver=3))  # f+1 = 2 ask for view 1: join; with ours that is q = 3
    assert replica.view == 1 and not replica.active
    assert replica.next_deadline() == 5.0 + 2 * replica.config.base_timeout


def test_a_re_sent_view_change_is_answered_with_ours() -> None:
    """The new primary may never have received our view-change (lost before the heal) and we stop
    re-sending once we hold q: when it re-sends its own, we answer, at most once per base timeout."""
    replica = three_slot_replica(3)
    replica.tick(5.0)
    first = vc(1, 1, receiver=3)
    replica.step(vc(0, 1, receiver=3))
    replica.step(first)  # joined view 1 with q view-changes

    def answers() -> list[Message]:
        return [m for m in replica.step(first).messages if m.kind is Kind.VIEW_CHANGE]

    answer = answers()
    assert [(m.receiver, m.view, m.sender) for m in answer] == [(1, 1, 3)]
    assert answers() == []  # not again within base_timeout
    replica.tick(5.0 + replica.config.base_timeout)
    assert len(answers()) == 1


def test_a_replica_still_short_of_q_view_changes_does_not_answer() -> None:
    replica = three_slot_replica(3)
    replica.tick(1_000.0)  # its own timer: view change to 1, alone
    again = vc(0, 1, receiver=3)
    replica.step(again)  # two of q = 3: still waiting, and re-sending on its own timer
    assert [m for m in replica.step(again).messages if m.kind is Kind.VIEW_CHANGE] == []
