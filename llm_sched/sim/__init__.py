"""Discrete-event simulation of batch scheduling on real and synthetic traces.

Modules: ``engine`` (the event loop), ``swf`` (Standard Workload Format reader), ``baselines``
(FCFS and EASY backfilling on one machine, the reference replays), ``outcome`` (per-job results),
``metrics`` (figures and CSV), and the failure-aware simulator: ``workload`` (synthetic job
streams, trace jobs), ``detector`` (phi-accrual failure detector), ``failures`` (seeded failure
schedules), ``resilience`` (central FCFS/EASY against decentralized agents on pools, with failures),
``resilience_metrics`` (availability, MTTR and the rest, from a run's events) and ``simulate``
(entry points: ``simulate_trace`` for ``--simulate``, scenarios and comparisons for campaigns).
Nothing is imported here, so that importing one module stays cheap.
"""
