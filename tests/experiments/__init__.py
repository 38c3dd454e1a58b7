"""Tests of the protocol experiment runner (llm_sched/experiments)."""
