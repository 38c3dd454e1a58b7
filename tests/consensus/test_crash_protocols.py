"""Raft and Multi-Paxos (crash-fault model): message counts, leader change, randomized crashes:
no committed placement lost or changed, and a leader elected within two election timeouts in at
least 99% of runs (``harness.election_times`` defines the wait)."""

from __future__ import annotations

import os

import pytest

from llm_sched.protocols.messages import KeyRing, Kind, Message, PlacementValue
from llm_sched.transport.harness import (
    Schedule,
    check_durability,
    election_times,
    make_factory,
    random_schedule,
    run_schedule,
    sweep,
)
from llm_sched.transport.network import Crash, FaultPlan, Network, Partition

from .helpers import run_to_end

# n: 2(n-1), from docs/REFERENCE.md (n = 4 follows the formula)
STEADY = {4: 6, 5: 8, 7: 12, 10: 18}
WORKERS = min(2, os.cpu_count() or 1)
SCHEDULES = 2_000


def per_kind(sent: list[Message], kind: Kind) -> list[Message]:
    return [m for m in sent if m.kind is kind]


@pytest.mark.parametrize("n", sorted(STEADY))
@pytest.mark.parametrize("slots", [1, 6])
def test_raft_counts(n: int, slots: int) -> None:
    net, sent = run_to_end(Schedule("raft", n, slots, seed=n))
    assert all(len(net.decisions[a]) == slots for a in range(n))
    replication = len(per_kind(sent, Kind.APPEND)) + len(per_kind(sent, Kind.APPEND_REPLY))
    assert replication == slots * STEADY[n]
    candidacies = {(m.sender, m.view) for m in per_kind(sent, Kind.REQUEST_VOTE)}
    votes = len(per_kind(sent, Kind.REQUEST_VOTE)) + len(per_kind(sent, Kind.VOTE))
    assert candidacies and votes == len(candidacies) * STEADY[n]  # 2(n-1) per candidate


@pytest.mark.parametrize("n", sorted(STEADY))
@pytest.mark.parametrize("slots", [1, 6])
def test_multipaxos_counts(n: int, slots: int) -> None:
    net, sent = run_to_end(Schedule("multipaxos", n, slots, seed=n))
    assert all(len(net.decisions[a]) == slots for a in range(n))
    phase2 = len(per_kind(sent, Kind.ACCEPT)) + len(per_kind(sent, Kind.ACCEPTED))
    assert phase2 == slots * STEADY[n]
    ballots = {m.view for m in per_kind(sent, Kind.PAXOS_PREPARE)}
    phase1 = len(per_kind(sent, Kind.PAXOS_PREPARE)) + len(per_kind(sent, Kind.PROMISE))
    assert phase1 == len(ballots) * STEADY[n]  # once per leader, not per slot


def first_leader(protocol: str, n: int, slots: int) -> tuple[int, float]:
    """The first leader of a clean run and when it sent its first proposals (one round trip,
    two base link delays, before the first decision)."""
    net, sent = run_to_end(Schedule(protocol, n, slots, seed=3))
    kind = Kind.APPEND if protocol == "raft" else Kind.ACCEPT
    leader = next(m.sender for m in sent if m.kind is kind)
    return leader, min(net.decided_at[leader].values()) - 2.0


@pytest.mark.parametrize("protocol", ["raft", "multipaxos"])
def test_leader_crash_with_proposals_in_flight(protocol: str) -> None:
    """The leader crashes for good just after sending its first proposals: the others elect a
    new leader, which must recover what a majority accepted, and finish every slot."""
    n, slots = 5, 6
    leader, sent_at = first_leader(protocol, n, slots)
    faults = FaultPlan(crashes=(Crash(leader, at=sent_at + 0.5),))
    net, sent = run_to_end(Schedule(protocol, n, slots, seed=3, faults=faults), until=10_000)
    live = [a for a in range(n) if a != leader]
    assert all(len(net.decisions[a]) == slots for a in live)
    assert len({tuple(sorted(net.decisions[a].items(), key=lambda kv: kv[0])) for a in live}) == 1
    assert net.stats.dropped["crashed"] > 0  # the replies to the dead leader
    if protocol == "multipaxos":  # phase 1 once for all open slots; the dead leader cannot promise
        second = sorted({m.view for m in per_kind(sent, Kind.PAXOS_PREPARE)})[1]
        assert len([m for m in per_kind(sent, Kind.PAXOS_PREPARE) if m.view == second]) == n - 1
        assert len([m for m in per_kind(sent, Kind.PROMISE) if m.view == second]) == n - 2
    else:  # RequestVote 2(n-1) per candidate, less the dead leader's vote
        terms = {m.view for m in per_kind(sent, Kind.REQUEST_VOTE)}
        assert len(terms) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["raft", "multipaxos"])
def test_random_crash_schedules_are_safe_and_live(protocol: str) -> None:
    """Up to f_c crashes (some for good) and restarts on lossy, partitioned links: no agreement,
    validity or durability violation, every live agent finishes, and in at least 99% of runs every
    wait for a leader ends within two (base) election timeouts."""
    result = sweep(protocol, range(SCHEDULES), workers=WORKERS)
    within_1, within_2 = result.elected_within(1), result.elected_within(2)
    print(f"\n{protocol}: {result.runs} schedules in {result.seconds:.1f}s, leader within one election "
          f"timeout in {within_1:.2%} of runs, within two in {within_2:.2%}")
    assert result.runs == SCHEDULES
    assert result.violating == [] and result.undecided == []
    assert within_2 >= 0.99


def test_election_wait_runs_from_the_need_or_the_last_fault_to_a_known_leader() -> None:
    """n = 5 (majority 3). Agent 0 leads term 1 once two others know it (t = 60): a wait of 60 from
    the start. It crashes at 100; a partition heals at 130; agent 1 leads term 2 and is known to a
    majority at 180: that wait is counted from the heal, 50."""
    faults = FaultPlan(partitions=(Partition(110.0, 130.0, (frozenset({0, 1, 2}), frozenset({3, 4}))),),
                       crashes=(Crash(0, 100.0),))
    s = Schedule("raft", 5, 1, seed=1, faults=faults)
    log = [(50.0, 0, (1, 0)), (55.0, 1, (1, 0)), (60.0, 2, (1, 0)),
           (170.0, 1, (2, 1)), (175.0, 2, None), (178.0, 4, (2, 1)), (180.0, 3, (2, 1))]
    assert election_times(log, s, end=200.0, needed_at_end=False) == [60.0, 50.0]
    assert election_times(log[:3], s, end=200.0, needed_at_end=True) == [60.0, 70.0]  # still waiting at the end
    assert election_times(log[:3], s, end=200.0, needed_at_end=False) == [60.0]


@pytest.mark.parametrize("protocol", ["raft", "multipaxos"])
def test_a_lost_or_changed_decision_is_caught(protocol: str) -> None:
    s = Schedule(protocol, 5, 2, seed=4)
    keyring = KeyRing(s.seed, range(s.n))
    net = Network(range(s.n), make_factory(s, keyring), keyring, s.seed, s.faults)
    net.run(2_000.0)
    assert check_durability(net, range(s.n)) == []
    net.cores[1]._decided.pop(0)  # type: ignore[attr-defined]
    net.cores[2]._decided[1] = PlacementValue("job-1", ("cpu-1",), "rewritten")  # type: ignore[attr-defined]
    assert check_durability(net, range(s.n)) == [
        "durability: agent 1 lost its decision for slot 0",
        "durability: agent 2 changed its decision for slot 1",
    ]


@pytest.mark.parametrize("protocol", ["raft", "multipaxos"])
def test_a_quorum_below_majority_is_caught(protocol: str) -> None:
    result = sweep(protocol, range(1_000), stop_at_violation=True, quorum_delta=-1)
    assert result.violating
    seed = result.violating[0][0]
    a = run_schedule(random_schedule(seed, protocol, quorum_delta=-1))
    b = run_schedule(random_schedule(seed, protocol, quorum_delta=-1))
    assert a.violations and a.history_hash == b.history_hash
