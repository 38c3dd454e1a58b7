"""Agents as separate processes on a NATS bus: the federation's agent process, its launcher and its client."""
