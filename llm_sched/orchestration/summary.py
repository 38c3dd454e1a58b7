"""The run summary, computed from the run's events and nothing else."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

from llm_sched.core.events import RunEvent, comparable


def summarize(events: list[RunEvent] | list[dict[str, Any]]) -> dict[str, Any]:
    """Figures for the summary table and ``summary.json``; ``events`` may be objects or JSONL dicts."""
    rows = [e.model_dump(mode="json") if isinstance(e, RunEvent) else e for e in events]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    decisions = [r["decision"] for r in by_kind.get("decision", [])]
    calls = [r["record"] for r in by_kind.get("llm_call", [])]
    answers = [r["proposal"] for r in by_kind.get("proposal", []) if r["proposal"]]  # proposals first, then votes
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
        # Commits carrying a quorum certificate of signed votes (python main.py --verify RUN_ID checks them).
        "certified_commits": sum(1 for d in commits if d.get("certificate")),
        # Votes that did not count: a signature that fails (forged, garbled) or an equivocation.
        "votes_refused": len(by_kind.get("vote_refused", [])),
        # Every vote round is decided by a protocol run on the simulated network: its messages, counted.
        "protocol": started.get("protocol"),
        "protocol_messages": sum(t.get("messages") or 0 for t in by_kind.get("tally", [])),
        "invalid_proposals_blocked": len(by_kind.get("proposal_blocked", [])),
        # Proposals whose self-reported score exceeded their author's own recomputed view (evidence).
        "scores_overclaimed": len(by_kind.get("score_overclaimed", [])),
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
        # Modelled (a formula on the state, not a measurement): see DecisionMade.quality.
        "placement_quality_mean_modelled": _mean([r["quality"] for r in by_kind.get("decision", [])
                                                  if r.get("quality") is not None]),
        "awards": dict(sorted(Counter(d["proposer"] for d in commits).items())),
        "decisions_under_attack": _decisions_under_attack(rows),
        "consensus_s_per_job": {r["decision"]["job_id"]: r.get("wall_s", 0.0) for r in by_kind.get("decision", [])},
        "consensus_s_mean": round(sum(times) / len(times), 4) if times else None,
        "consensus_s_max": max(times) if times else None,
        "wall_s": ended.get("wall_s"),
        # Where the committed jobs ran and what the executor saw (sim: every job completes).
        "executor": started.get("executor", "sim"),
        "job_ends": dict(sorted(Counter(r.get("state", "completed") for r in by_kind.get("job_finished", [])).items())),
        "jobs_placed_again": sum(1 for r in by_kind.get("job_submitted", []) if r.get("retry_of")),
        "nodes_down": sum(1 for r in by_kind.get("node_state", []) if r["state"] == "down"),
        "source": started.get("source", {}),
        "llm": llm_quality(started, calls, answers, times),
    }


def llm_quality(started: dict[str, Any], calls: list[dict[str, Any]], answers: list[dict[str, Any]],
                decision_times: list[float]) -> dict[str, Any]:
    """How the model did in this run, from its calls and the answers built on them.

    ``valid_first_try``: calls whose first answer validated; ``repaired``: valid after one repair
    request; ``fallbacks``: proposals and votes the heuristic made because the model's call failed;
    ``agreement_with_heuristic``: of the model's own proposals where it had a choice (two options or
    more), the share that chose the heuristic's first option; ``decision_latency_s``: from the start
    of the proposals to the commit or reject, over the run's decisions."""
    source = started.get("source") or {}
    chose = [a for a in answers if a.get("via") == "llm" and not a.get("byzantine") and (a.get("options_offered") or 0) > 1]
    tokens_in = [c["tokens_in"] for c in calls if c.get("tokens_in") is not None]
    tokens_out = [c["tokens_out"] for c in calls if c.get("tokens_out") is not None]
    return {
        "provider": "replay" if source.get("kind") == "replay" else source.get("provider", started.get("provider")),
        "model": source.get("model"),
        "calls": len(calls),
        "valid_first_try": sum(1 for c in calls if c["outcome"] == "ok"),
        "repaired": sum(1 for c in calls if c["outcome"] == "repaired"),
        "fallbacks": sum(1 for a in answers if a["via"] == "fallback"),
        "prompt_tokens": sum(tokens_in) if tokens_in else None,
        "completion_tokens": sum(tokens_out) if tokens_out else None,
        "agreement_with_heuristic": round(sum(1 for a in chose if a["heuristic_rank"] == 0) / len(chose), 4) if chose else None,
        "decision_latency_s": _latency(decision_times),
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _latency(times: list[float]) -> dict[str, float | None]:
    if not times:
        return {"median": None, "p95": None}
    ordered = sorted(times)
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]  # nearest rank
    return {"median": round(statistics.median(ordered), 4), "p95": round(p95, 4)}


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


def measured_removed(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without the figures measured on the clock (wall and consensus times, decision
    latency): what two runs with the same seed and cassette must agree on."""
    kept = {k: v for k, v in summary.items() if "wall" not in k and not k.startswith("consensus_s")}
    if isinstance(kept.get("llm"), dict):
        kept["llm"] = {k: v for k, v in kept["llm"].items() if k != "decision_latency_s"}
    return kept


def same_run(a: list[RunEvent] | list[dict[str, Any]], b: list[RunEvent] | list[dict[str, Any]]) -> bool:
    """True when two event streams are equal apart from timestamps, latencies and wall time."""
    return [comparable(e) for e in a] == [comparable(e) for e in b]
