"""Pure data: nodes, pools, jobs, placements, and the state they are reserved against.

:func:`check_placement` is the single authority on whether a placement fits the current state.
"""

from llm_sched.domain.feasibility import Feasibility, OverAllocationError, check_placement, commit, fitting_nodes
from llm_sched.domain.model import JOB_KINDS, SPECIALTIES, Job, Node, Placement, Pool, Resources
from llm_sched.domain.state import ClusterState

__all__ = [
    "JOB_KINDS",
    "SPECIALTIES",
    "ClusterState",
    "Feasibility",
    "Job",
    "OverAllocationError",
    "Node",
    "Placement",
    "Pool",
    "Resources",
    "check_placement",
    "commit",
    "fitting_nodes",
]
