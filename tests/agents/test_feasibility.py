"""The feasibility check: the single authority on whether a placement fits."""

from __future__ import annotations

import pytest

from llm_sched.core import Placement, check_placement, fitting_nodes
from llm_sched.core.feasibility import OverAllocationError, commit
from tests.agents.fixtures import federation, job


def test_a_fitting_placement_is_feasible_and_reserves_capacity() -> None:
    state = federation()
    j = job("j1", gpus=4)
    placement = Placement(job_id="j1", pool="gpu-pool", nodes=("gpu-pool-0", "gpu-pool-1"))
    assert check_placement(state, j, placement).ok
    commit(state, j, placement)
    assert state.available("gpu-pool-0").gpus == 0
    assert not check_placement(state, job("j2", gpus=1), Placement(job_id="j2", pool="gpu-pool",
                                                                   nodes=("gpu-pool-0", "gpu-pool-2"))).ok
    state.release("j1")
    assert state.available("gpu-pool-0").gpus == 4


@pytest.mark.parametrize(
    ("nodes", "pool", "fragment"),
    [
        (("ghost-1", "gpu-pool-0"), "gpu-pool", "unknown node ghost-1"),
        (("gpu-pool-0",), "gpu-pool", "1 nodes given, job needs 2"),
        (("gpu-pool-0", "gpu-pool-0"), "gpu-pool", "a node is listed twice"),
        (("cpu-pool-0", "gpu-pool-0"), "gpu-pool", "node cpu-pool-0 is in pool cpu-pool"),
        (("cpu-pool-0", "cpu-pool-1"), "cpu-pool", "4 GPUs needed, 0 free"),
        (("gpu-pool-0", "gpu-pool-1"), "no-pool", "unknown pool no-pool"),
    ],
)
def test_every_kind_of_bad_placement_is_named(nodes: tuple[str, ...], pool: str, fragment: str) -> None:
    verdict = check_placement(federation(), job("j1", gpus=4), Placement(job_id="j1", pool=pool, nodes=nodes))
    assert not verdict.ok
    assert any(fragment in reason for reason in verdict.reasons), verdict.reasons


def test_overloaded_nodes_take_no_job() -> None:
    state = federation()
    state.load["cpu-pool-0"] = 0.95
    verdict = check_placement(state, job("j1", kind="physics"), Placement(job_id="j1", pool="cpu-pool",
                                                                          nodes=("cpu-pool-0", "cpu-pool-1")))
    assert "node cpu-pool-0 is overloaded (load 95%)" in verdict.reasons
    assert "cpu-pool-0" not in fitting_nodes(state, job("j1", kind="physics"), "cpu-pool")


def test_commit_refuses_to_over_allocate() -> None:
    state = federation()
    big = job("big", cores=64)  # node 1 has 10% background load: only 57 cores free
    with pytest.raises(OverAllocationError):
        commit(state, big, Placement(job_id="big", pool="cpu-pool", nodes=("cpu-pool-0", "cpu-pool-1")))
    assert state.available("cpu-pool-0").cores == 64  # nothing was reserved
