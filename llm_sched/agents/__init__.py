"""Specialist agents: heuristics, LLM answer models, prompts, Byzantine behaviours, the agent graph."""
