"""llm-sched: LLM-backed specialist agents that schedule HPC jobs by Byzantine fault-tolerant consensus."""

__version__ = "0.1.0"
