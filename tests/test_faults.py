"""Fault plans: loading and validation, presets and their bounds, resolution, and the fault log of a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_sched.errors import UserError
from llm_sched.experiments import faults as F
from llm_sched.protocols.quorum import byzantine_f, crash_f
from llm_sched.transport.harness import BEHAVIOURS, check_agreement

EXAMPLES = Path(__file__).resolve().parent.parent / "scenarios" / "experiments" / "faults"


def test_byzantine_types_are_the_harness_behaviours() -> None:
    assert set(F.BYZANTINE_TYPES) == set(BEHAVIOURS)
    assert set(F.FAULT_TYPES) == set(F.NETWORK_TYPES) | set(F.BYZANTINE_TYPES)


# --- files ---------------------------------------------------------------------------------------


def test_example_plans_load_and_resolve() -> None:
    paths = sorted(EXAMPLES.glob("*.yaml"))
    assert {p.name for p in paths} >= {"partition_heal.yaml", "crash_restart.yaml"}
    for path in paths:
        plan = F.load_fault_plan(path, n=4)
        assert plan.faults and plan.name
        resolved = F.resolve(plan, 4, seed=1, horizon=500)
        assert all(f.targets for f in resolved.faults)
        assert F.over_tolerance(resolved, "byzantine") == []

    heal = F.resolve(F.load_fault_plan(EXAMPLES / "partition_heal.yaml"), 4, seed=1)
    (partition,) = heal.network.partitions
    assert (partition.start, partition.end) == (2.0, 62.0)
    assert partition.groups == (frozenset({0, 1}), frozenset({2, 3}))
    (drop,) = heal.network.link_faults
    assert (drop.kind, drop.start, drop.end, drop.intensity, len(drop.agents)) == ("drop", 0.0, 30.0, 0.2, 1)

    crash = F.resolve(F.load_fault_plan(EXAMPLES / "crash_restart.yaml"), 4, seed=1, horizon=300)
    assert [(c.node, c.at, c.restart_at) for c in crash.network.crashes] == [(1, 5.0, 45.0)]
    (slow,) = crash.network.link_faults
    assert (slow.kind, slow.agents, slow.start, slow.end, slow.intensity) == ("slow", frozenset({2}), 0.0, 300, 3.0)


BAD = {
    "unknown type": ("faults:\n  - type: explode\n    targets: [0]\n",
                     ["faults.0.type", "'crash'", "'partition'", "'vote-against'", "'mixed'"]),
    "no targets": ("faults:\n  - type: slow\n    targets: [1]\n  - type: crash\n    targets: []\n",
                   ["faults.1.targets", "no target"]),
    "fraction 0": ("faults:\n  - type: drop\n    targets: {fraction: 0}\n", ["faults.0.targets", "fraction"]),
    "fraction above 1": ("faults:\n  - type: drop\n    targets: {fraction: 1.5}\n", ["faults.0.targets", "fraction"]),
    "id out of range": ("faults:\n  - type: slow\n    targets: [0]\n  - type: crash\n    targets: [1, 9]\n",
                        ["faults.1.targets", "agent 9", "0..3"]),
    "negative id": ("faults:\n  - type: crash\n    targets: [-1]\n", ["faults.0.targets", "0 to n-1"]),
    "extra key": ("faults:\n  - type: drop\n    targets: [0]\n    colour: red\n", ["faults.0.colour", "unknown field", "targets"]),
    "extra key in targets": ("faults:\n  - type: drop\n    targets: {fraction: 0.2, seed: 3}\n",
                             ["faults.0.targets", "fraction"]),
    "negative start": ("faults:\n  - type: drop\n    targets: [0]\n    start: -1\n", ["faults.0.start", "greater"]),
    "negative duration": ("faults:\n  - type: drop\n    targets: [0]\n    duration: -5\n",
                          ["faults.0.duration", "greater"]),
    "intensity on crash": ("faults:\n  - type: crash\n    targets: [0]\n    intensity: 2\n",
                           ["faults.0.intensity", "drop, duplicate"]),
    "probability above 1": ("faults:\n  - type: drop\n    targets: [0]\n    intensity: 1.5\n",
                            ["faults.0.intensity", "probability"]),
    "partition of everyone": ("faults:\n  - type: partition\n    targets: [0, 1, 2, 3]\n",
                              ["faults.0.targets", "at least one"]),
    "bad YAML": ("faults:\n  - type: [drop\n", ["line 3", "not valid YAML"]),
    "not a mapping": ("- type: drop\n", ["mapping"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_name_the_file_and_the_field(case: str, tmp_path: Path) -> None:
    text, expected = BAD[case]
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        F.load_fault_plan(path, n=4)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, (part, message)


def test_ids_are_checked_against_n_when_resolving() -> None:
    plan = F.FaultPlanSpec(name="p", faults=[F.FaultSpec(type="crash", targets=(2, 5))])
    F.resolve(plan, 6, seed=0)
    with pytest.raises(UserError, match=r"fault plan p: faults\.0\.targets: agent 5 is outside 0\.\.4"):
        F.resolve(plan, 5, seed=0)


def test_conflicting_faults_on_one_agent_are_refused() -> None:
    two_behaviours = F.FaultPlanSpec(faults=[F.FaultSpec(type="silent", targets=(1,)),
                                             F.FaultSpec(type="alter", targets=(0, 1), start=50)])
    with pytest.raises(UserError, match=r"faults\.1\.targets: agent 1 already has a Byzantine fault \(faults\.0\)"):
        F.resolve(two_behaviours, 4, seed=0)
    overlapping = F.FaultPlanSpec(faults=[F.FaultSpec(type="crash", targets=(1,), start=0, duration=50),
                                          F.FaultSpec(type="crash", targets=(1,), start=20)])
    with pytest.raises(UserError, match=r"faults\.1\.targets: agent 1 is already crashed"):
        F.resolve(overlapping, 4, seed=0)
    one_after_the_other = F.FaultPlanSpec(faults=[F.FaultSpec(type="crash", targets=(1,), start=0, duration=50),
                                                  F.FaultSpec(type="crash", targets=(1,), start=50)])
    assert len(F.resolve(one_after_the_other, 4, seed=0).network.crashes) == 2


def test_fractions_become_seeded_agents_at_least_one() -> None:
    plan = F.FaultPlanSpec(faults=[F.FaultSpec(type="drop", targets={"fraction": 0.3}),  # type: ignore[arg-type]
                                   F.FaultSpec(type="silent", targets={"fraction": 0.01})])  # type: ignore[arg-type]
    a = F.resolve(plan, 10, seed=1)
    assert [len(f.targets) for f in a.faults] == [3, 1]
    assert a == F.resolve(plan, 10, seed=1)
    others = [F.resolve(plan, 10, seed=s).faults[0].targets for s in range(2, 8)]
    assert any(t != a.faults[0].targets for t in others)
    assert all(0 <= x < 10 for f in a.faults for x in f.targets)


def test_explicit_plans_may_exceed_the_bounds_and_say_so() -> None:
    plan = F.FaultPlanSpec(faults=[F.FaultSpec(type="silent", targets=(0, 1)), F.FaultSpec(type="crash", targets=(2,))])
    resolved = F.resolve(plan, 4, seed=0)  # three faulty agents of four: allowed, but reported
    assert F.over_tolerance(resolved, "byzantine") == ["3 agents Byzantine or crashed at once; n=4 tolerates f=1"]
    crash_report = F.over_tolerance(resolved, "crash")
    assert crash_report[0].startswith("Byzantine faults on agents [0, 1]")


# --- presets -------------------------------------------------------------------------------------

PRESET_SHAPE = {"light": (1, 20), "medium": (2, 30), "heavy": (3, 40), "chaos": (5, 60)}


@pytest.mark.parametrize("name", sorted(PRESET_SHAPE))
@pytest.mark.parametrize("n", [4, 7, 10, 20])
def test_presets_have_their_faults_on_their_share_of_agents(name: str, n: int) -> None:
    count, percent = PRESET_SHAPE[name]
    plan = F.preset(name, n, seed=4, horizon=300.0)
    resolved = F.resolve(plan, n, seed=4, horizon=300.0)
    assert len(plan.faults) == count
    assert len({a for f in resolved.faults for a in f.targets}) == max(1, n * percent // 100)
    assert all(0 <= f.start < 150 and f.end <= 300 for f in resolved.faults)
    assert plan == F.preset(name, n, seed=4, horizon=300.0)
    assert plan != F.preset(name, n, seed=5, horizon=300.0)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10, 13])
def test_presets_stay_within_what_the_method_tolerates(n: int) -> None:
    for name in F.PRESETS:
        for seed in range(25):
            bft = F.resolve(F.preset(name, n, seed, 200.0, "byzantine"), n, seed, horizon=200.0)
            assert F.over_tolerance(bft, "byzantine") == []
            assert F.most_at_once(bft.faults, (*F.BYZANTINE_TYPES, "crash")) <= byzantine_f(n)
            cft = F.resolve(F.preset(name, n, seed, 200.0, "crash"), n, seed, horizon=200.0)
            assert F.over_tolerance(cft, "crash") == []
            assert not any(f.byzantine for f in cft.faults)
            assert F.most_at_once(cft.faults, ("crash",)) <= crash_f(n)


def test_presets_draw_every_kind_of_fault() -> None:
    seen = {f.type for seed in range(40) for f in F.preset("chaos", 10, seed, 100.0).faults}
    assert seen == set(F.FAULT_TYPES)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(UserError, match="light, medium, heavy, chaos"):
        F.preset("apocalypse", 4, 0, 100.0)
    with pytest.raises(UserError, match="tolerates must be one of byzantine, crash"):
        F.preset("light", 4, 0, 100.0, "bft")  # type: ignore[arg-type]
    assert F.preset("heavy", 7, 3, 100) == F.preset("heavy", 7, 3, 100.0)


# --- driving a plan and its log --------------------------------------------------------------------


def test_partition_heal_is_applied_and_drops_messages() -> None:
    resolved = F.resolve(F.load_fault_plan(EXAMPLES / "partition_heal.yaml", n=4), 4, seed=2)
    run = F.run_plan(resolved, "pbft", slots=3, until=2_000)
    stats = run.network.stats
    drop, partition = run.log()
    assert F.check_applied([drop, partition]) == []
    assert (partition.started_at, partition.ended_at, partition.applied) == (2.0, 62.0, True)
    assert partition.effects["dropped"] == stats.dropped["partition"] > 0
    assert (drop.started_at, drop.ended_at) == (0.0, 30.0)
    assert drop.effects["affected"] == stats.dropped["link-fault"] > 0
    assert all(len(run.network.decisions[a]) == 3 for a in range(4))  # decided once healed
    assert all(t > 62.0 for a in range(4) for t in run.network.decided_at[a].values())


def test_crash_restart_is_applied_with_its_times() -> None:
    resolved = F.resolve(F.load_fault_plan(EXAMPLES / "crash_restart.yaml", n=4), 4, seed=1, horizon=1_000)
    run = F.run_plan(resolved, "raft", slots=3, until=1_000)
    crash, slow = run.log()
    assert F.check_applied([crash, slow]) == []
    assert (crash.started_at, crash.ended_at) == (5.0, 45.0)
    assert crash.effects["lost_deliveries"] == run.network.stats.dropped["crashed"]
    assert (1, "crash") in {(s, e) for _, e, s in run.network.fault_events}
    assert slow.effects["affected"] > 0 and slow.ended_at == 1_000


def test_every_kind_of_scheduled_fault_is_applied_and_honest_agents_agree() -> None:
    plan = F.FaultPlanSpec(name="all", faults=[
        F.FaultSpec(type="vote-against", targets=(1,), start=0.0, duration=40.0),
        F.FaultSpec(type="equivocate", targets=(2,), start=1.0),
        F.FaultSpec(type="crash", targets=(3,), start=2.0, duration=30.0),
        F.FaultSpec(type="duplicate", targets=(4,), start=0.0, duration=20.0, intensity=0.5),
        F.FaultSpec(type="corrupt", targets=(5,), start=0.0, duration=20.0, intensity=0.5),
        F.FaultSpec(type="delay", targets=(6,), start=0.0, duration=20.0, intensity=3.0),
        F.FaultSpec(type="partition", targets=(5, 6), start=3.0, duration=20.0),
    ])
    resolved = F.resolve(plan, 7, seed=11)
    assert F.over_tolerance(resolved, "byzantine") == ["3 agents Byzantine or crashed at once; n=7 tolerates f=2"]
    run = F.run_plan(resolved, "pbft", slots=4, until=3_000)
    log = run.log()
    assert F.check_applied(log) == []
    assert [r.started_at for r in log] == [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 3.0]
    assert [r.ended_at for r in log] == [40.0, None, 32.0, 20.0, 20.0, 20.0, 23.0]
    assert all(next(iter(r.effects.values())) > 0 for r in log), [r.describe() for r in log]
    stats = run.network.stats
    assert stats.corrupted == stats.fault_effects["link:1"] > 0 and stats.rejected > 0  # damaged frames fail the MAC
    assert stats.duplicated == stats.fault_effects["link:0"] > 0
    honest = {a: run.network.decisions[a] for a in run.honest}
    assert check_agreement(honest) == []


def test_a_fault_after_the_run_is_reported_as_not_applied() -> None:
    plan = F.FaultPlanSpec(faults=[F.FaultSpec(type="partition", targets=(0,), start=1.0, duration=5.0),
                                   F.FaultSpec(type="crash", targets=(1,), start=50.0),
                                   F.FaultSpec(type="silent", targets=(2,), start=60.0)])
    resolved = F.resolve(plan, 4, seed=0)
    assert all(r.applied is None for r in F.fault_log(resolved))  # nothing run yet
    run = F.run_plan(resolved, "tendermint", slots=1, until=20.0)
    problems = F.check_applied(run.log())
    assert len(problems) == 2
    assert problems[0].startswith("fault 1 crash on [1] 50-inf: NOT applied")
    assert problems[1].startswith("fault 2 silent on [2] 60-inf: NOT applied")
