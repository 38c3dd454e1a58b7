"""Seeded randomized schedules: safety and termination with f Byzantine agents, the healing bound
(PBFT within f+1 views, Tendermint within f+1 rounds after the network heals), and proof that the
checkers bite: f+1 colluders or a quorum one too small break safety, and timeouts below the delay
bound break the healing bound. Every failure replays from its seed.

Each schedule is tiny (n in 4, 4, 5, 7; one to three slots), with lossy, duplicating, corrupting,
reordering links until GST, a partition that heals, maybe a crash and restart and a slow agent.
The cores' timeouts come from the schedule's post-heal delay bound (partial synchrony with Δ known
after GST, ``harness.configs_for``); the bound is measured from the view or round in progress when
the network healed (``harness._views_used``).
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from llm_sched.protocols.quorum import byzantine_f
from llm_sched.transport.harness import Schedule, random_schedule, run_schedule, sweep
from llm_sched.transport.network import FaultPlan, LinkModel

SCHEDULES = 2_000
WORKERS = min(2, os.cpu_count() or 1)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["pbft", "tendermint"])
def test_f_byzantine_never_break_safety_and_all_decide(protocol: str) -> None:
    result = sweep(protocol, range(SCHEDULES), workers=WORKERS)
    print(f"\n{protocol}: {result.runs} schedules in {result.seconds:.1f}s, {result.messages} messages, "
          f"views/rounds after healing {sorted(result.views_after_heal.items())}")
    assert result.runs == SCHEDULES
    assert result.violating == []
    assert result.undecided == []
    assert result.slow_healing == []  # every decision within f+1 views (rounds) after the heal


@pytest.mark.slow
def test_pbft_fast_path_is_safe() -> None:
    result = sweep("pbft", range(SCHEDULES // 4), workers=WORKERS, fast_path=True)
    assert result.violating == [] and result.undecided == [] and result.slow_healing == []


def test_schedules_really_are_adversarial() -> None:
    """The generator must produce what the safety test claims to cover."""
    schedules = [random_schedule(seed, "pbft") for seed in range(300)]
    behaviours = {b for s in schedules for _, b in s.byzantine}
    assert behaviours == {"silent", "equivocate", "forge", "alter", "vote-against", "mixed"}
    assert all(len(s.byzantine) == byzantine_f(s.n) for s in schedules)
    faults = [s.faults for s in schedules]
    assert sum(bool(f.partitions) for f in faults) > 100
    assert sum(bool(f.crashes) for f in faults) > 50
    assert sum(bool(f.slow) for f in faults) > 50
    assert sum(f.link.drop > 0 for f in faults) > 100
    assert sum(f.link.corrupt > 0 for f in faults) > 100
    assert sum(f.link.jitter > 0 for f in faults) > 150


@pytest.mark.parametrize("protocol", ["pbft", "tendermint"])
@pytest.mark.parametrize("attack", [{"extra_byzantine": 1}, {"quorum_delta": -1}], ids=["f+1-colluders", "quorum-1"])
def test_checker_finds_a_violation_beyond_the_bound(protocol: str, attack: dict[str, int]) -> None:
    result = sweep(protocol, range(1_000), stop_at_violation=True, **attack)  # type: ignore[arg-type]
    assert result.violating, f"no violation in {result.runs} seeds: the checker cannot fail?"
    seed, violation = result.violating[0]
    assert violation.startswith(("agreement", "validity"))
    first = run_schedule(random_schedule(seed, protocol, **attack))  # type: ignore[arg-type]
    again = run_schedule(random_schedule(seed, protocol, **attack))  # type: ignore[arg-type]
    assert first.violations and first.violations == again.violations
    assert first.history_hash == again.history_hash


@pytest.mark.parametrize("protocol", ["pbft", "tendermint"])
def test_healing_bound_bites_when_timeouts_ignore_the_delay_bound(protocol: str) -> None:
    """A silent Byzantine agent and a slow honest one that every quorum needs (n = 4, q = 3): with
    the default timeouts, shorter than a view or round takes through the slow agent, views (rounds)
    are wasted and the checker reports it; with timeouts derived from Δ the bound holds."""
    faults = FaultPlan(LinkModel(base_delay=1.0), slow=((2, 50.0),))
    s = Schedule(protocol, 4, 1, seed=7, byzantine=((1, "silent"),), faults=faults)
    blind = run_schedule(s)
    assert blind.safe and blind.terminated
    assert not blind.within_bound, f"{blind.views_after_heal} views/rounds: the bound cannot fail?"
    informed = run_schedule(replace(s, known_delay=True))
    assert informed.safe and informed.terminated and informed.within_bound
    again = run_schedule(s)
    assert (again.history_hash, again.views_after_heal) == (blind.history_hash, blind.views_after_heal)


@pytest.mark.parametrize("protocol", ["pbft", "tendermint"])
def test_a_seed_replays_to_the_same_history(protocol: str) -> None:
    hashes = {run_schedule(random_schedule(17, protocol)).history_hash for _ in range(3)}
    assert len(hashes) == 1
