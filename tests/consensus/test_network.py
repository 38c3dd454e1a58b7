"""The simulated network: determinism, fault injection and its accounting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llm_sched.transport.harness import Schedule, random_schedule, run_schedule
from llm_sched.transport.network import Crash, FaultPlan, LinkModel, Partition

from .helpers import run_to_end

PROTOCOLS = ["pbft", "tendermint"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("seed", [3, 11, 29])
def test_same_seed_same_history(protocol: str, seed: int) -> None:
    s = random_schedule(seed, protocol)
    first, second = run_schedule(s), run_schedule(s)
    assert first.history_hash == second.history_hash
    assert first.stats == second.stats
    assert first.decisions == second.decisions


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_different_seeds_differ(protocol: str) -> None:
    faults = FaultPlan(LinkModel(jitter=2.0))
    a = run_schedule(Schedule(protocol, 4, 2, seed=1, faults=faults))
    b = run_schedule(Schedule(protocol, 4, 2, seed=2, faults=faults))
    assert a.history_hash != b.history_hash


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_corrupted_frames_fail_the_mac_and_are_counted(protocol: str) -> None:
    faults = FaultPlan(LinkModel(corrupt=1.0), gst=30.0)  # every frame before GST is damaged
    net, _ = run_to_end(Schedule(protocol, 4, 1, seed=5, faults=faults), until=5_000)
    assert net.stats.corrupted > 0
    assert net.stats.rejected == net.stats.corrupted  # each one discarded, nothing else
    assert all(net.decided_at[a][0] >= 30.0 for a in range(4))  # nothing got through before GST


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forgeries_are_rejected(protocol: str) -> None:
    s = Schedule(protocol, 4, 2, seed=5, byzantine=((1, "forge"),))
    net, _ = run_to_end(s, until=5_000)
    assert net.stats.rejected > 0 and net.stats.corrupted == 0
    assert all(len(net.decisions[a]) == 2 for a in s.honest)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_losses_are_counted_and_recovered_from(protocol: str) -> None:
    faults = FaultPlan(LinkModel(drop=1.0), gst=40.0)
    net, _ = run_to_end(Schedule(protocol, 4, 1, seed=5, faults=faults), until=5_000)
    assert net.stats.dropped["loss"] > 0
    assert all(0 in net.decisions[a] for a in range(4))
    delivered = sum(net.stats.delivered.values())
    lost = sum(net.stats.dropped.values()) + net.stats.rejected
    assert delivered + lost == net.stats.total_sent + net.stats.duplicated


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_duplicates_are_counted_and_harmless(protocol: str) -> None:
    faults = FaultPlan(LinkModel(duplicate=1.0), gst=1_000.0)
    net, _ = run_to_end(Schedule(protocol, 4, 2, seed=5, faults=faults))
    assert net.stats.duplicated == net.stats.total_sent
    assert sum(net.stats.delivered.values()) == 2 * net.stats.total_sent
    assert all(len(net.decisions[a]) == 2 for a in range(4)) and not net.conflicts


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_partition_blocks_then_heals(protocol: str) -> None:
    halves = (frozenset({0, 1}), frozenset({2, 3}))  # neither half holds a quorum of 3
    faults = FaultPlan(partitions=(Partition(0.0, 100.0, halves),))
    net, _ = run_to_end(Schedule(protocol, 4, 1, seed=5, faults=faults), until=5_000)
    assert net.stats.dropped["partition"] > 0
    assert all(net.decided_at[a][0] > 100.0 for a in range(4))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_crash_and_restart(protocol: str) -> None:
    """Agent 2 crashes mid-run and comes back with only its persisted state; it still finishes."""
    faults = FaultPlan(crashes=(Crash(2, at=2.5, restart_at=80.0),))
    net, _ = run_to_end(Schedule(protocol, 4, 3, seed=5, faults=faults), until=5_000)
    assert net.stats.dropped["crashed"] > 0
    assert all(len(net.decisions[a]) == 3 for a in range(4)) and not net.conflicts
    assert net.is_up(2)


def test_a_crashed_agent_keeps_its_decisions() -> None:
    faults = FaultPlan(crashes=(Crash(3, at=3.5, restart_at=50.0),))  # after deciding slot 0
    net, _ = run_to_end(Schedule("pbft", 4, 2, seed=5, faults=faults), until=5_000)
    core = net.cores[3]
    assert 0 in core.decided and net.decided_at[3][0] < 3.5  # type: ignore[attr-defined]
    assert not net.conflicts


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_slow_agent_decides_later(protocol: str) -> None:
    faults = FaultPlan(slow=((3, 5.0),))
    net, _ = run_to_end(Schedule(protocol, 5, 1, seed=5, faults=faults))
    fast = max(net.decided_at[a][0] for a in range(3))
    assert net.decided_at[3][0] > fast


def test_history_does_not_depend_on_python_hash_seed() -> None:
    """Replays must match across processes: no set or dict order may leak into the history."""
    script = (
        "from llm_sched.transport.harness import random_schedule, run_schedule\n"
        "for p in ('pbft', 'tendermint', 'raft', 'multipaxos'):\n"
        "    for seed in (1, 5, 9):\n"
        "        print(run_schedule(random_schedule(seed, p)).history_hash)\n"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout
        for hash_seed in ("1", "2")
    }
    assert len(outputs) == 1 and len(next(iter(outputs)).split()) == 12
