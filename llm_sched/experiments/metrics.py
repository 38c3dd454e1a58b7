"""Aggregation: per-method figures from the runs' records, and nothing that was not measured.

Every function takes the deterministic run records of :mod:`llm_sched.experiments.run` (the
``raw_results.json`` runs) and returns plain JSON-ready dicts. Percentiles interpolate linearly
between the closest ranks (as NumPy's default does).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from llm_sched.experiments.config import ExperimentConfig
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum, crash_f, majority
from llm_sched.protocols.registry import Method, get_method

REACHED = ("commit", "reject", "refused")  # refused: agreed, then refused by the in-order execution
UNFINISHED = ("undecided", "partial")


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    rank = (len(xs) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return xs[low] + (xs[high] - xs[low]) * (rank - low)


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p50": None, "p99": None, "max": None}
    return {"mean": _r(sum(values) / len(values)), "p50": _r(percentile(values, 50)),
            "p99": _r(percentile(values, 99)), "max": _r(max(values))}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _mean(values: Sequence[float]) -> float | None:
    return _r(sum(values) / len(values)) if values else None


def _sum_counters(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for d in dicts:
        total.update(d)
    return dict(sorted(total.items()))


def tolerance_of(method: Method, n: int) -> dict[str, Any]:
    if method.fault_model == "byzantine":
        return {"fault_model": "byzantine", "tolerates": byzantine_f(n), "quorum": byzantine_quorum(n),
                "bound": "n >= 3f+1, f Byzantine or crashed agents"}
    return {"fault_model": "crash", "tolerates": crash_f(n), "quorum": majority(n),
            "bound": "n >= 2f+1 crashed agents; no Byzantine agent"}


def method_summary(config: ExperimentConfig, method: Method, runs: Sequence[dict[str, Any]],
                   fault_logs: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """Every figure of one method over its repetitions."""
    n = config.agents
    jobs = [j for r in runs for j in r["jobs"]]
    outcomes = Counter(j["outcome"] for j in jobs)
    reached = [j for j in jobs if j["outcome"] in REACHED]
    latencies = [j["first_decided_at"] for j in reached]
    everyone = [j["all_decided_at"] for j in reached if j["all_decided_at"] is not None]
    label = method.progress_label.replace(" ", "_")
    progress = [j[label] for j in jobs if j.get(label) is not None]
    violations = [v for r in runs for v in r["violations"]]
    kinds = Counter(v.split(":", 1)[0] for v in violations)
    decisions = len(reached)
    to_decision = [r["messages_to_decision"] for r in runs]
    total_msgs = sum(m["total"] for m in to_decision)
    total_bytes = sum(m["bytes"] for m in to_decision)
    decision_msgs = sum(r["decision_messages"] for r in runs)
    llm_calls = sum(r["llm"]["calls"] for r in runs)
    active = [len(j["faults_active"]) for j in jobs]
    logs = [rec for log in fault_logs for rec in log]
    beyond = sorted({p for r in runs for p in r["beyond_tolerance"]})
    summary: dict[str, Any] = {
        "method": method.name,
        "title": method.title,
        **tolerance_of(method, n),
        "runs": len(runs),
        "jobs": len(jobs),
        "decisions_reached": decisions,
        "commits": outcomes["commit"],
        "agreed_rejects": outcomes["reject"],
        "refused_at_apply": outcomes["refused"],
        "every_decision_reached": decisions == len(jobs),
        "outcomes": dict(sorted(outcomes.items())),
        "safety_violations": len(violations),
        "violations_by_kind": dict(sorted(kinds.items())),
        "runs_with_violations": sum(1 for r in runs if r["violations"]),
        "violation_examples": violations[:5],
        "latency": _stats(latencies),
        "latency_all_honest": _stats(everyone),
        "makespan": _stats([r["all_decided_at"] for r in runs if r["all_decided_at"] is not None]),
        "progress": {"counts": f"{method.progress_label}s", "mean": _mean(progress),
                     "max": max(progress) if progress else None},
        "messages": {
            "per_run": _mean([m["total"] for m in to_decision]),
            "per_decision": _r(total_msgs / decisions) if decisions else None,
            "bytes_per_run": _mean([m["bytes"] for m in to_decision]),
            "bytes_per_decision": _r(total_bytes / decisions) if decisions else None,
            "normal_case_per_decision": _r(decision_msgs / decisions) if decisions else None,  # decision kinds only
            "normal_case_kinds": [str(k) for k in method.decision_kinds],
            "reference_per_decision": method.normal_case(n) if method.normal_case else None,
            "reference_formula": method.formula,
            "by_kind": _sum_counters(m["by_kind"] for m in to_decision),
            "bytes_by_kind": _sum_counters(m["bytes_by_kind"] for m in to_decision),
            "whole_run_total": sum(r["messages_run"]["total"] for r in runs),
            "rejected_by_mac": sum(m["rejected_by_mac"] for m in to_decision),
        },
        "llm": {
            "calls": llm_calls,
            "tokens_in": sum(r["llm"]["tokens_in"] for r in runs),
            "tokens_out": sum(r["llm"]["tokens_out"] for r in runs),
            "outcomes": _sum_counters(r["llm"]["outcomes"] for r in runs),
            "proposals_via": _sum_counters(r["proposals_via"] for r in runs),
        },
        "faults": {
            "scheduled": len(logs),
            "applied": sum(1 for rec in logs if rec["applied"]),
            "not_applied": [rec["describe"] for rec in logs if rec["applied"] is not True],
            "active_per_job": _mean(active),
            "jobs_with_faults_active": sum(1 for a in active if a),
            "beyond_tolerance": beyond,
        },
        "byzantine": byzantine_effect(runs),
    }
    summary["note"] = note(config, method, summary)
    return summary


def byzantine_effect(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the Byzantine agents achieved, as measured: broken agreement, decided values that fail the
    check, decisions on a value only a Byzantine agent made up, jobs left undecided."""
    jobs = [j for r in runs for j in r["jobs"]]
    violations = [v for r in runs for v in r["violations"]]
    return {
        "agents_per_run": max((len(r["byzantine_agents"]) for r in runs), default=0),
        "agreement_violations": sum(1 for v in violations if v.startswith("agreement")),
        "validity_violations": sum(1 for v in violations if v.startswith("validity")),
        "conflicting_jobs": sum(1 for j in jobs if j["outcome"] == "conflict"),
        "infeasible_decisions": sum(1 for j in jobs if j["outcome"] == "infeasible"),
        "refused_at_apply": sum(1 for j in jobs if j["outcome"] == "refused"),
        "rejects_while_feasible": sum(1 for j in jobs if j["reject_while_feasible"]),
        "byzantine_values_decided": sum(1 for j in jobs if j["byzantine_value"]),
        "undecided_jobs": sum(1 for j in jobs if j["outcome"] in UNFINISHED),
    }


def note(config: ExperimentConfig, method: Method, s: dict[str, Any]) -> str:
    """One sentence on the fault model and one on what was measured against it."""
    n, b, c = config.agents, config.byzantine, config.crash
    e = s["byzantine"]
    lies = _count(e["byzantine_values_decided"], "decision")
    measured = (f"{s['decisions_reached']} of {s['jobs']} decisions reached, {e['agreement_violations']} agreement "
                f"and {e['validity_violations']} validity violations, {lies} on a value only a Byzantine agent "
                f"proposed, {_count(e['undecided_jobs'], 'job')} left undecided")
    if e["refused_at_apply"]:
        measured += (f", {_count(e['refused_at_apply'], 'decided placement')} refused when executed in order "
                     "(an earlier decision had taken the capacity)")
    if method.fault_model == "crash":
        head = (f"{method.name} is a crash-fault protocol, built for crashes, not lies: with n={n} it tolerates "
                f"up to f_c={crash_f(n)} crashed agents and no Byzantine agent (replicas accept what the leader "
                "sends, nothing checks it).")
        if e["agents_per_run"] == 0:
            return f"{head} No Byzantine agent in this experiment; measured: {measured}."
        return f"{head} Against {e['agents_per_run']} Byzantine agents per run it measured: {measured}."
    head = (f"{method.name} is Byzantine fault tolerant: with n={n} it tolerates f={byzantine_f(n)} Byzantine or "
            f"crashed agents (q={byzantine_quorum(n)}); this experiment had {b} Byzantine and {c} crashed per run.")
    return f"{head} Measured: {measured}."


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}" if k == 1 else f"{k} {noun}s"


def fault_aware(config: ExperimentConfig, summaries: dict[str, dict[str, Any]],
                runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per method: the faults (scheduled, applied, beyond tolerance) and the decisions made while
    faults were active against those made without any."""
    out: dict[str, Any] = {}
    for name, s in summaries.items():
        jobs = [j for r in runs[name] for j in r["jobs"]]
        split = {"with_faults_active": [j for j in jobs if j["faults_active"]],
                 "without_faults": [j for j in jobs if not j["faults_active"]]}
        out[name] = {
            "fault_model": s["fault_model"],
            "tolerates": s["tolerates"],
            "faults": s["faults"],
            "byzantine": s["byzantine"],
            **{key: {"jobs": len(js),
                     "decisions_reached": sum(1 for j in js if j["outcome"] in REACHED),
                     "outcomes": dict(sorted(Counter(j["outcome"] for j in js).items())),
                     "latency": _stats([j["first_decided_at"] for j in js if j["outcome"] in REACHED])}
               for key, js in split.items()},
            "safety_violations": s["safety_violations"],
            "note": s["note"],
        }
    return out


def per_fault_type(runs: dict[str, list[dict[str, Any]]],
                   logs: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per method and fault type: how often scheduled and applied, what the faults did, and the
    decisions and violations of the jobs decided while such a fault was active."""
    out: dict[str, Any] = {}
    for name, method_runs in runs.items():
        types: dict[str, dict[str, Any]] = defaultdict(lambda: {
            "scheduled": 0, "applied": 0, "effects": Counter(), "jobs_active": 0, "decisions_reached": 0,
            "runs": 0, "runs_with_violations": 0})
        for run, log in zip(method_runs, logs[name], strict=True):
            by_index = {rec["fault"]: rec for rec in log}
            seen: set[str] = set()
            for rec in log:
                t = types[rec["type"]]
                t["scheduled"] += 1
                t["applied"] += bool(rec["applied"])
                t["effects"].update({k: v for k, v in rec["effects"].items()})
                seen.add(rec["type"])
            for job in run["jobs"]:
                for kind in sorted({by_index[i]["type"] for i in job["faults_active"]}):
                    types[kind]["jobs_active"] += 1
                    types[kind]["decisions_reached"] += job["outcome"] in REACHED
            for kind in seen:
                types[kind]["runs"] += 1
                types[kind]["runs_with_violations"] += bool(run["violations"])
        out[name] = {k: {**v, "effects": {e: _r(x) for e, x in sorted(v["effects"].items())}}
                     for k, v in sorted(types.items())}
    return out


def summarize_methods(config: ExperimentConfig, runs: dict[str, list[dict[str, Any]]],
                      logs: dict[str, list[list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Per-method summaries, in the config's method order."""
    return {name: method_summary(config, get_method(name), runs[name], logs[name]) for name in config.methods}
