"""The per-member state machine of the seven-agent federation: proposals, checks and decisions."""

from __future__ import annotations

from functools import cache

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.federation.replica import NO_CAPACITY, LoggedJob, Replica
from llm_sched.federation.spec import Federation, load_federation
from llm_sched.orchestration.scenarios import JobSpec
from llm_sched.protocols.messages import PlacementBatch, PlacementValue

BATCH = 10


@cache
def seven() -> Federation:
    return load_federation(str(PROJECT_ROOT / "scenarios" / "federations" / "seven.yaml"), PROJECT_ROOT / "scenarios")


def logged_jobs() -> list[LoggedJob]:
    return [LoggedJob(i, spec, arrival) for i, (spec, arrival) in enumerate(seven().job_specs(), start=1)]


def replica(member: int = 0) -> Replica:
    return Replica(seven().initial_state(), seven().members[member].specialty)


def snapshot(r: Replica) -> tuple[object, ...]:
    """Everything that decides a member's next checks."""
    s = r.state
    return (r.applied, {n: s.used(n) for n in s.nodes},
            {j: (job, placement) for j, (job, placement) in sorted(s.running.items())}, dict(sorted(r._ends.items())))


def spec(job_id: str, **need: object) -> JobSpec:
    fields = {"id": job_id, "kind": "ai", "nodes": 1, "cores": 8, "memory_gb": 16.0, "runtime_s": 3600.0, **need}
    return JobSpec.model_validate(fields)


def with_entry(batch: PlacementBatch, index: int, entry: PlacementValue) -> PlacementBatch:
    entries = list(batch.entries)
    entries[index] = entry
    return PlacementBatch(batch.first, tuple(entries))


# --- propose and validate leave the state as it was ---------------------------------------------


def test_a_proposal_is_valid_and_neither_step_changes_the_state() -> None:
    r, jobs = replica(), logged_jobs()[:BATCH]
    before = snapshot(r)
    batch = r.propose(jobs)
    assert snapshot(r) == before
    assert batch.first == 1 and [e.job_id for e in batch.entries] == [j.spec.id for j in jobs]
    assert all(e.placement for e in batch.entries)  # the empty cluster takes the first ten
    assert r.validate(batch, jobs)
    assert snapshot(r) == before


def test_propose_and_validate_leave_the_state_unchanged_when_earlier_jobs_end_meanwhile() -> None:
    r, jobs = replica(), logged_jobs()
    r.apply(r.propose(jobs[:6]), jobs[:6])
    before = snapshot(r)
    later = jobs[6:20]  # j01 (arrival 0, 1800 s) ends before j07 arrives: the trial releases it
    batch = r.propose(later)
    assert snapshot(r) == before
    assert r.validate(batch, later)
    assert snapshot(r) == before
    assert "j01" in r.state.running


def test_apply_changes_what_is_applied_and_running() -> None:
    r, jobs = replica(), logged_jobs()[:5]  # arrivals 0..1200 s: none has ended yet
    batch = r.propose(jobs)
    r.apply(batch, jobs)
    assert r.applied == 5
    placed = {e.job_id: e.placement for e in batch.entries if e.placement}
    assert {j: p.nodes for j, (_, p) in r.state.running.items()} == placed
    assert any(r.state.used(n).cores for n in placed["j01"])  # type: ignore[union-attr]


def test_apply_refuses_a_batch_out_of_order() -> None:
    r, jobs = replica(), logged_jobs()
    batch = r.propose(jobs[:3])
    with pytest.raises(ValueError):
        r.apply(PlacementBatch(2, batch.entries), jobs[1:4])


# --- what validate refuses ----------------------------------------------------------------------


def test_validate_refuses_a_batch_that_does_not_start_after_the_applied_jobs() -> None:
    r, jobs = replica(), logged_jobs()
    first = r.propose(jobs[:3])
    r.apply(first, jobs[:3])
    assert not r.validate(first, jobs[:3])  # already applied
    batch = r.propose(jobs[3:6])
    assert r.validate(batch, jobs[3:6])
    assert not r.validate(PlacementBatch(5, batch.entries), jobs[3:6])  # claims to start at job 5, not 4


def test_validate_refuses_a_batch_of_another_length_or_an_empty_one() -> None:
    r, jobs = replica(), logged_jobs()
    batch = r.propose(jobs[:3])
    assert not r.validate(batch, jobs[:2])
    assert not r.validate(batch, jobs[:4])
    assert not r.validate(PlacementBatch(1, ()), [])


def test_validate_refuses_jobs_in_the_wrong_order() -> None:
    r, jobs = replica(), logged_jobs()[:3]
    batch = r.propose(jobs)
    swapped = PlacementBatch(1, (batch.entries[1], batch.entries[0], batch.entries[2]))
    assert not r.validate(swapped, jobs)


@pytest.mark.parametrize("nodes", [("nowhere",), ("cb-03", "nowhere"), ()], ids=["unknown", "unknown-second", "none"])
def test_validate_refuses_a_placement_on_an_unknown_node(nodes: tuple[str, ...]) -> None:
    r, jobs = replica(), logged_jobs()[:1]
    job = jobs[0]
    if len(nodes) == 2:  # a two-node job so that only the second node is wrong
        job = LoggedJob(1, spec("two", nodes=2), 0.0)
    assert not r.validate(PlacementBatch(1, (PlacementValue(job.spec.id, nodes),)), [job])


def test_validate_refuses_a_placement_that_overcommits_a_node() -> None:
    r = replica()
    big = [LoggedJob(1, spec("big-1", cores=64, memory_gb=384.0), 0.0),
           LoggedJob(2, spec("big-2", cores=64, memory_gb=384.0), 0.0)]  # 768 GB on a 512 GB node
    node = "cb-03"
    alone = PlacementBatch(1, (PlacementValue("big-1", (node,)),))
    assert r.validate(alone, big[:1])
    both = PlacementBatch(1, (PlacementValue("big-1", (node,)), PlacementValue("big-2", (node,))))
    assert not r.validate(both, big)
    assert r.validate(with_entry(both, 1, PlacementValue("big-2", ("cb-04",))), big)


def test_validate_refuses_a_placement_across_pools_or_on_too_few_nodes() -> None:
    r = replica()
    job = LoggedJob(1, spec("pair", nodes=2), 0.0)
    assert r.validate(PlacementBatch(1, (PlacementValue("pair", ("cb-01", "cb-02")),)), [job])
    assert not r.validate(PlacementBatch(1, (PlacementValue("pair", ("cb-01", "ca-02")),)), [job])
    assert not r.validate(PlacementBatch(1, (PlacementValue("pair", ("cb-01",)),)), [job])
    assert not r.validate(PlacementBatch(1, (PlacementValue("pair", ("cb-01", "cb-01")),)), [job])


def test_validate_refuses_a_reject_of_a_job_that_fits() -> None:
    r, jobs = replica(), logged_jobs()[:3]
    batch = r.propose(jobs)
    rejected = with_entry(batch, 1, PlacementValue(jobs[1].spec.id, None, NO_CAPACITY + "claimed"))
    assert not r.validate(rejected, jobs)


def test_a_job_that_fits_nowhere_is_rejected_and_the_reject_is_valid() -> None:
    r, jobs = replica(), logged_jobs()
    huge = LoggedJob(2, spec("huge", cores=10_000), 0.0)
    batch_jobs = [jobs[0], huge]
    batch = r.propose(batch_jobs)
    entry = batch.entries[1]
    assert entry.placement is None and entry.reason.startswith(NO_CAPACITY)
    assert r.validate(batch, batch_jobs)
    placed_anyway = with_entry(batch, 1, PlacementValue("huge", ("cb-05",)))
    assert not r.validate(placed_anyway, batch_jobs)
    # The reason is part of what is decided: a leader cannot give another (the executor queues a
    # job by it), for every member computes the same one from the same state.
    for reason in ("nope", NO_CAPACITY + "claimed", ""):
        assert not r.validate(with_entry(batch, 1, PlacementValue("huge", None, reason)), batch_jobs)
    assert all(replica(m).validate(batch, batch_jobs) for m in range(len(seven().members)))
    r.apply(batch, batch_jobs)
    assert r.applied == 2 and "huge" not in r.state.running


# --- decisions: every member ends in the same state -------------------------------------------


def decide_all(replicas: list[Replica], size: int) -> list[PlacementBatch]:
    """Run the whole job log: the primary rotates per batch, every member checks and applies."""
    jobs, decided = logged_jobs(), []
    for number, start in enumerate(range(0, len(jobs), size)):
        part = jobs[start:start + size]
        batch = replicas[number % len(replicas)].propose(part)
        assert all(r.validate(batch, part) for r in replicas), f"batch {number} refused by a member"
        for r in replicas:
            r.apply(batch, part)
        decided.append(batch)
    return decided


def test_every_member_accepts_every_honest_proposal_and_all_end_alike() -> None:
    replicas = [replica(m) for m in range(seven().n)]
    decide_all(replicas, size=BATCH)
    assert all(r.applied == 50 for r in replicas)
    assert all(snapshot(r) == snapshot(replicas[0]) for r in replicas)


def test_two_replicas_fed_the_same_decided_batches_end_with_identical_state() -> None:
    decided = decide_all([replica(m) for m in range(seven().n)], size=7)
    jobs = logged_jobs()
    a, b = replica(2), replica(5)  # other specialties: only the decisions count
    for batch in decided:
        part = jobs[batch.first - 1:batch.last]
        a.propose(part)  # a's trials in between change nothing
        assert a.validate(batch, part)
        a.apply(batch, part)
        b.apply(batch, part)
    assert snapshot(a) == snapshot(b)
    assert a.applied == b.applied == 50


def test_a_jobs_nodes_are_released_once_a_later_job_arrives_after_its_end() -> None:
    r = replica()
    first = LoggedJob(1, spec("first", runtime_s=1000.0), 0.0)
    r.apply(r.propose([first]), [first])
    nodes = r.state.running["first"][1].nodes
    used = {n: r.state.used(n) for n in nodes}
    assert all(u.cores == 8 for u in used.values())

    before_end = LoggedJob(2, spec("second"), 999.0)
    r.apply(r.propose([before_end]), [before_end])
    assert "first" in r.state.running

    at_end = LoggedJob(3, spec("third"), 1000.0)  # arrival + runtime_s = 1000: ended by then
    r.apply(r.propose([at_end]), [at_end])
    assert "first" not in r.state.running
    held = {n for j, (_, p) in r.state.running.items() for n in p.nodes}
    assert all(r.state.used(n).cores == 0 for n in nodes if n not in held)


def test_a_node_freed_by_an_ended_job_may_be_placed_on_again() -> None:
    r = replica()
    node = "cb-03"
    first = LoggedJob(1, spec("first", cores=64, memory_gb=384.0, runtime_s=600.0), 0.0)
    r.apply(PlacementBatch(1, (PlacementValue("first", (node,)),)), [first])
    again = PlacementBatch(2, (PlacementValue("second", (node,)),))
    too_soon = LoggedJob(2, spec("second", cores=64, memory_gb=384.0), 599.0)
    after = LoggedJob(2, spec("second", cores=64, memory_gb=384.0), 600.0)
    assert not r.validate(again, [too_soon])
    assert r.validate(again, [after])
    assert "first" in r.state.running  # the check released it only for the trial


# --- a federation whose decisions run on an executor: its reports, decided in log order -----------

def executed(member: int = 0) -> Replica:
    return Replica(seven().initial_state(), seven().members[member].specialty, executed=True)


def _decide(r: Replica, jobs: list[LoggedJob]) -> PlacementBatch:
    batch = r.propose(jobs)
    assert r.validate(batch, jobs)
    r.apply(batch, jobs)
    return batch


def test_on_an_executor_a_job_holds_its_nodes_until_the_report_of_its_end() -> None:
    from llm_sched.federation.execution import Report

    r = executed()
    first = LoggedJob(1, spec("first", runtime_s=10.0), 0.0)
    _decide(r, [first])
    later = LoggedJob(2, spec("later"), 1_000_000.0)  # long after its runtime: still running until reported
    _decide(r, [later])
    assert "first" in r.state.running
    _decide(r, [LoggedJob(3, None, 1_000_000.0, Report(ended="first", state="completed", number=1))])
    assert "first" not in r.state.running and "later" in r.state.running


def test_a_node_reported_down_takes_no_job_and_a_proposal_naming_it_is_refused() -> None:
    from llm_sched.federation.execution import Report

    r = executed()
    node = sorted(r.state.nodes)[0]
    down = LoggedJob(1, None, 0.0, Report(node=node, down=True, number=1))
    _decide(r, [down])
    assert node in r.state.down
    job = LoggedJob(2, spec("one"), 0.0)
    assert node not in (r.propose([job]).entries[0].placement or ())
    forced = PlacementBatch(2, (PlacementValue("one", (node,), "on the down node"),))
    assert not r.validate(forced, [job])
    up = LoggedJob(2, None, 0.0, Report(node=node, down=False, number=2))
    _decide(r, [up])
    assert node not in r.state.down


def test_a_report_entry_must_be_the_reports_own_and_trials_leave_no_trace() -> None:
    from llm_sched.federation.execution import Report, report_entry

    r = executed()
    _decide(r, [LoggedJob(1, spec("first"), 0.0)])
    ended = LoggedJob(2, None, 0.0, Report(ended="first", state="lost", reason="NODE_FAIL", number=1))
    before = snapshot(r)
    assert r.propose([ended]).entries == (report_entry(ended.report),)  # type: ignore[arg-type]
    wrong = PlacementBatch(2, (PlacementValue(ended.entry_id, None, "executor: job first completed"),))
    assert not r.validate(wrong, [ended])
    assert snapshot(r) == before  # proposing and checking changed nothing
    _decide(r, [ended])
    assert "first" not in r.state.running
