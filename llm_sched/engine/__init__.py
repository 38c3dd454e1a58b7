"""The decision engine: every placement of every mode is decided here, the same way.

Agents sign their votes on a candidate placement; :mod:`.tally` screens the votes (only a valid
signature counts), runs a real protocol among the agents on the seeded simulated network
(:mod:`.round`: PBFT by default) and, when the protocol decides the candidate with a quorum of
signed accepts, returns the commit's quorum certificate. The scenario graph
(:mod:`llm_sched.orchestration.graph`) and the simulator's agents (:mod:`llm_sched.sim.resilience`)
both decide through it.
"""
