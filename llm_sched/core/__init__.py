"""Pure data and rules: nodes, pools, jobs, placements, and the state they are reserved against.

:func:`check_placement` is the single authority on whether a placement fits the current state. Beside
them: proposals, votes and decisions (``decisions``), vote signatures (``signing``), the records of
model calls (``records``) and the typed run events on one stream (``events``).
"""

from llm_sched.core.feasibility import Feasibility, OverAllocationError, check_placement, commit, fitting_nodes
from llm_sched.core.model import JOB_KINDS, SPECIALTIES, Job, Node, Placement, Pool, Resources
from llm_sched.core.state import ClusterState

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
