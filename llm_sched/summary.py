"""The run summary, computed from the run's events and nothing else."""

from __future__ import annotations

from collections import Counter
from typing import Any

from llm_sched.events import RunEvent, comparable


def summarize(events: list[RunEvent] | list[dict[str, Any]]) -> dict[str, Any]:
    """Figures for the summary table and ``summary.json``; ``events`` may be objects or JSONL dicts."""
    rows = [e.model_dump(mode="json") if isinstance(e, RunEvent) else e for e in events]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    decisions = [r["decision"] for r in by_kind.get("decision", [])]
    calls = [r["record"] for r in by_kind.get("llm_call", [])]
    answers = [r["proposal"] for r in by_kind.get("proposal", []) if r["proposal"]]
    answers += [r["vote"] for r in by_kind.get("vote", []) if r["vote"]]
    started = by_kind.get("scenario_started", [{}])[0]
    ended = by_kind.get("scenario_ended", [{}])[-1]
    commits = [d for d in decisions if d["outcome"] == "commit"]
    times = [r.get("wall_s", 0.0) for r in by_kind.get("decision", [])]
    return {
        "scenario": started.get("scenario"),
        "provider": started.get("provider"),
        "seed": started.get("seed"),
        "agents": len(started.get("agents", {})),
        "quorum": started.get("quorum"),
        "jobs": len(by_kind.get("job_submitted", [])),
        "committed": sum(1 for d in decisions if d["outcome"] == "commit"),
        "rejected": sum(1 for d in decisions if d["outcome"] == "reject"),
        "unanimous": sum(1 for r in by_kind.get("decision", []) if r["unanimous"]),
        "rounds": sum(d["rounds"] for d in decisions),
        "invalid_proposals_blocked": len(by_kind.get("proposal_blocked", [])),
        "faulty_agents_detected": [
            {"agent": r["agent"], "job_id": r["job_id"], "reputation": r["reputation"]}
            for r in by_kind.get("agent_excluded", [])
        ],
        "agents_readmitted": [{"agent": r["agent"], "job_id": r["job_id"]} for r in by_kind.get("agent_readmitted", [])],
        "silent_answers": sum(1 for r in by_kind.get("proposal", []) if r["proposal"] is None)
        + sum(1 for r in by_kind.get("vote", []) if r["vote"] is None),
        "llm_calls": len(calls),
        "llm_outcomes": dict(sorted(Counter(c["outcome"] for c in calls).items())),
        "fallbacks": sum(1 for a in answers if a["via"] == "fallback"),
        "nodes_allocated": sum(len(d["placement"]["nodes"]) for d in commits),
        "awards": dict(sorted(Counter(d["proposer"] for d in commits).items())),
        "decisions_under_attack": _decisions_under_attack(rows),
        "consensus_s_per_job": {r["decision"]["job_id"]: r.get("wall_s", 0.0) for r in by_kind.get("decision", [])},
        "consensus_s_mean": round(sum(times) / len(times), 4) if times else None,
        "consensus_s_max": max(times) if times else None,
        "wall_s": ended.get("wall_s"),
    }


def _decisions_under_attack(rows: list[dict[str, Any]]) -> int:
    """Decisions made while at least one scheduled fault was active (from the fault_changed events)."""
    active: set[tuple[str, str]] = set()
    count = 0
    for row in rows:
        if row["kind"] == "fault_changed":
            key = (row["agent"], row["behaviour"])
            active.add(key) if row["active"] else active.discard(key)
        elif row["kind"] == "decision" and active:
            count += 1
    return count


def same_run(a: list[RunEvent] | list[dict[str, Any]], b: list[RunEvent] | list[dict[str, Any]]) -> bool:
    """True when two event streams are equal apart from timestamps, latencies and wall time."""
    return [comparable(e) for e in a] == [comparable(e) for e in b]
