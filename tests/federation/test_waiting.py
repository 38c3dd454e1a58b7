"""The executor's queue: jobs the members rejected for want of room wait, and go into the job log again
as retries once they fit beside what runs."""

from __future__ import annotations

from llm_sched.core.model import Node, Pool, Resources
from llm_sched.core.state import ClusterState
from llm_sched.federation.replica import NO_CAPACITY
from llm_sched.federation.waiting import WaitingJobs
from llm_sched.orchestration.scenarios import JobSpec

NO_ROOM = NO_CAPACITY + "every pool is busy"


def two_nodes() -> ClusterState:
    node = Resources(cores=32, memory_gb=256.0)
    return ClusterState([Pool(id="cpu", specialty="compute", nodes=(Node(id="n1", capacity=node),
                                                                     Node(id="n2", capacity=node)))])


def spec(job_id: str, nodes: int = 1, cores: int = 32) -> JobSpec:
    return JobSpec.model_validate({"id": job_id, "kind": "physics", "nodes": nodes, "cores": cores,
                                   "memory_gb": 16.0, "runtime_s": 600.0})


def on(job_id: str, *nodes: str, width: int = 1) -> tuple[object, tuple[str, ...]]:
    return spec(job_id, width).job(), nodes


def test_only_a_job_rejected_for_room_that_the_whole_cluster_could_take_waits() -> None:
    waiting = WaitingJobs(two_nodes)
    assert waiting.rejected(spec("a"), NO_ROOM)
    assert not waiting.rejected(spec("wide", nodes=3), NO_ROOM)  # more nodes than the cluster has
    assert not waiting.rejected(spec("huge", cores=64), NO_ROOM)  # more cores than any node has
    assert not waiting.rejected(spec("b"), "refused: neither a job nor a report")
    assert len(waiting) == 1


def test_a_waiting_job_is_ready_once_its_room_is_back_and_then_waits_no_more() -> None:
    waiting = WaitingJobs(two_nodes)
    waiting.rejected(spec("a", nodes=2), NO_ROOM)
    assert waiting.ready([on("x", "n1")], down=()) == []  # one node still runs x
    assert len(waiting) == 1
    (ready,) = waiting.ready([], down=())
    assert ready.id == "a" and ready.nodes == 2  # the executor submits it again under a new id
    assert len(waiting) == 0 and waiting.ready([], down=()) == []  # ready once
    again = ready.model_copy(update={"id": "a.r1"})
    assert waiting.rejected(again, NO_ROOM)  # rejected again (a newcomer took the room): waits again
    assert [a.id for a in waiting.ready([], down=())] == ["a.r1"]


def test_waiting_jobs_go_oldest_first_and_each_keeps_its_room_from_the_next() -> None:
    waiting = WaitingJobs(two_nodes)
    for job_id in ("first", "second", "third"):
        waiting.rejected(spec(job_id), NO_ROOM)
    assert [a.id for a in waiting.ready([on("x", "n2")], down=())] == ["first"]
    assert [a.id for a in waiting.ready([], down=())] == ["second", "third"]


def test_a_node_that_is_down_gives_no_room() -> None:
    waiting = WaitingJobs(two_nodes)
    waiting.rejected(spec("a", nodes=2), NO_ROOM)
    assert waiting.ready([], down={"n2"}) == []
    assert [a.id for a in waiting.ready([], down=set())] == ["a"]


def test_a_job_with_a_retry_already_in_the_job_log_waits_no_more() -> None:
    # A restarted executor reads every decision again: the rejection, then the retry it had submitted.
    waiting = WaitingJobs(two_nodes)
    waiting.rejected(spec("a"), NO_ROOM)
    waiting.submitted_again("a")
    assert len(waiting) == 0 and waiting.ready([], down=()) == []


def test_jobs_submitted_and_not_yet_decided_keep_their_room() -> None:
    # A restarted executor submits the lost jobs again first: the members will place them first.
    waiting = WaitingJobs(two_nodes)
    waiting.rejected(spec("a"), NO_ROOM)
    assert waiting.ready([], down=(), ahead=[spec("lost1.r1").job(), spec("lost2.r1").job()]) == []
    assert [a.id for a in waiting.ready([], down=(), ahead=[spec("lost1.r1").job()])] == ["a"]
