"""Discrete-event simulation of batch scheduling on real and synthetic traces.

Modules: ``engine`` (the event loop), ``swf`` (Standard Workload Format reader), ``baselines``
(FCFS and EASY backfilling), ``outcome`` (per-job results), ``metrics`` (figures and CSV).
Nothing is imported here, so that importing one module stays cheap.
"""
