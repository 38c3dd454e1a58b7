"""One method, one repetition: the agents' cores on the simulated network, then per-job results.

The cores are built per agent from the method registry with the agent layer's hooks; Byzantine
agents are wrapped exactly as :func:`llm_sched.transport.harness.make_factory` wraps them
(:class:`~llm_sched.transport.harness.ByzantineCore`, or a
:class:`~llm_sched.transport.harness.SplitBrainCore` for ``equivocate``, colluding through one
:class:`~llm_sched.transport.harness.Collusion`), and active only within their fault window as
:func:`llm_sched.experiments.faults.run_plan` does (:class:`~llm_sched.experiments.faults.TimedByzantine`). The harness's
own factory cannot be reused as is: it hard-wires its toy application, and here the application is
the agent layer.

The run goes on until every scheduled fault edge has passed (so the fault log can confirm each
fault) and every honest agent that is up has decided every job, or until ``max_time``. Message
counts are taken twice: when the last honest agent decided (the cost of the decisions) and at the
end of the run (idle heartbeats and catch-up included).

Decisions are executed in slot order on the real cluster, as a replicated state machine executes
its agreed commands: a decided placement that fits is committed (its capacity reserved), an agreed
reject is a reject, and a decided placement that no longer fits because an earlier decision took the
capacity is refused, by every honest agent alike (outcome ``refused``). That can happen with
pipelined slots: a replica checks slot s against the values it holds for the slots before it, and a
view change may later replace one of those. Nothing that does not fit is ever committed.

Checks, from what the run recorded: agreement (``harness.check_agreement``); validity: every decided
value was produced by some agent and passes the feasibility check on the cluster as it started
(unknown or overloaded nodes, the wrong pool, the wrong node count, more than a node has: what no
honest validator accepts whatever the order); integrity: no honest agent decided a slot twice.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_sched.core import ClusterState, Feasibility, Job
from llm_sched.core.decisions import Certificate, Signature
from llm_sched.core.signing import VoteKey, placement_digest
from llm_sched.experiments.agents import Advisor, AgentHooks, AgentProfile, ClusterViews, LLMTally, ProposalLog
from llm_sched.experiments.faultplan import RepetitionPlan
from llm_sched.experiments.faults import (
    ByzantineActivity,
    TimedByzantine,
    check_applied,
    fault_log,
    over_tolerance,
    record_window_edge,
)
from llm_sched.orchestration.verify import unit_context
from llm_sched.protocols.certificate import certificate
from llm_sched.protocols.messages import AgentId, Core, KeyRing, Message, Output, PlacementValue, Value, digest_of
from llm_sched.protocols.quorum import byzantine_quorum, majority
from llm_sched.protocols.registry import CoreArgs, Hooks, Method
from llm_sched.transport.harness import ByzantineCore, Collusion, SplitBrainCore, check_agreement
from llm_sched.transport.network import Accounting, Network


@dataclass(frozen=True, slots=True)
class RunInputs:
    """What every run of an experiment shares."""

    cluster_state: Callable[[int], ClusterState]  # seed -> the cluster with that seed's loads
    jobs: tuple[Job, ...]
    profiles: tuple[AgentProfile, ...]
    max_time: float
    advisor: Advisor | None = None


@dataclass(slots=True)
class RunOutcome:
    """A run's deterministic record (``record``, for raw_results.json) and its fault log."""

    record: dict[str, Any]
    fault_log: list[dict[str, Any]]
    llm: LLMTally = field(default_factory=LLMTally)  # includes wall-clock latency, kept out of record
    # The agents' public keys and each committed job's certificate: signed with fresh keys, so never
    # the same twice and kept out of ``record`` (raw_results.json is the same for the same seed).
    certificates: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Wraps an honest core: remembers how far it had gone (view, round, term) when it decided, and
    signs each decided placement with its agent's key ("I decided this placement for this job"), the
    moment its core decides it. A quorum of those signatures over one digest is the job's certificate."""

    def __init__(self, inner: Core, method: Method, positions: dict[int, int | None], signing: Signing) -> None:
        self.node_id = inner.node_id
        self.inner, self._method, self._positions, self._signing = inner, method, positions, signing

    def step(self, msg: Message) -> Output:
        before = self._before()
        return self._note(self.inner.step(msg), before)

    def tick(self, now: float) -> Output:
        before = self._before()
        return self._note(self.inner.tick(now), before)

    def next_deadline(self) -> float | None:
        return self.inner.next_deadline()

    def persisted(self) -> object:
        return self.inner.persisted()

    def _before(self) -> int | None:
        return self._method.position(self.inner, -1) if self._method.position_before else None

    def _note(self, out: Output, before: int | None) -> Output:
        for slot, value in out.decisions:
            if slot not in self._positions:
                after = None if self._method.position_before else self._method.position(self.inner, slot)
                self._positions[slot] = before if self._method.position_before else after
            self._signing.sign(self.node_id, slot, value)
        return out


class Signing:
    """One run's signing keys (a fresh Ed25519 pair per agent, only in memory) and the signatures
    each agent made over what it decided, by slot: {slot: {agent: (digest, signature)}}."""

    def __init__(self, context: str, agents: Sequence[AgentId], views: ClusterViews) -> None:
        self._keys = {a: VoteKey(str(a), context, 0) for a in agents}
        self._views = views
        self.signed: dict[int, dict[AgentId, tuple[str, str]]] = {}

    def digest(self, slot: int, value: Value) -> str | None:
        """The digest of the placement a decided value names (None: a reject or another job's value)."""
        job = self._views.jobs[slot]
        placement = _placement(self._views.base, value)
        if placement is None or not isinstance(value, PlacementValue) or value.job_id != job.id:
            return None
        return placement_digest(job.id, placement["pool"] or "", placement["nodes"])

    def sign(self, agent: AgentId, slot: int, value: Value) -> None:
        digest = self.digest(slot, value)
        if digest is not None and agent not in self.signed.get(slot, {}):
            signature = self._keys[agent].sign(self._views.jobs[slot].id, slot, digest, True)
            self.signed.setdefault(slot, {})[agent] = (digest, signature)

    def certificate(self, slot: int, value: Value, quorum: int, n: int) -> Certificate | None:
        """The job's certificate: every signature over the decided value's digest, if a quorum signed."""
        digest = self.digest(slot, value)
        signers = sorted(a for a, (d, _) in self.signed.get(slot, {}).items() if d == digest)
        if digest is None or len(signers) < quorum:
            return None
        signatures = [Signature(agent=str(a), key_epoch=0, signature=self.signed[slot][a][1]) for a in signers]
        return certificate(self._views.jobs[slot].id, slot, digest, quorum, signatures, n)

    def public_keys(self) -> dict[str, str]:
        return {str(a): k.public_hex() for a, k in sorted(self._keys.items())}


def run_one(inputs: RunInputs, method: Method, plan: RepetitionPlan) -> RunOutcome:
    """Run ``method`` on one repetition's plan and check it."""
    jobs, slots, seed = inputs.jobs, len(inputs.jobs), plan.seed
    n = len(inputs.profiles)
    resolved = plan.resolved
    views = ClusterViews(inputs.cluster_state(seed), jobs)
    ledger = ProposalLog(jobs)
    hooks = {p.id: AgentHooks(p, views, ledger, inputs.advisor) for p in inputs.profiles}
    keyring = KeyRing(seed, range(n))
    peers = tuple(range(n))
    honest = tuple(a for a in peers if a not in resolved.byzantine)
    activity = ByzantineActivity()
    rng = random.Random(f"{seed}/byzantine")
    collusion = Collusion.split(honest, rng)
    positions: dict[AgentId, dict[int, int | None]] = {a: {} for a in peers}
    signing = Signing(unit_context({"method": method.name, "repetition": plan.repetition, "seed": seed}), peers,
                      views)

    def build(agent: AgentId, h: Hooks, restore: object | None) -> Core:
        return method.build(CoreArgs(agent, peers, slots, keyring.signer(agent), keyring, h, seed, restore))

    def factory(agent: AgentId, restore: object | None) -> Core:
        mine = hooks[agent]
        if restore is not None:
            mine.restart()
        truthful = Hooks(mine.propose, mine.validate, mine.reject, mine.bid)
        window = resolved.byzantine.get(agent)
        if window is None:
            return Recorder(build(agent, truthful, restore), method, positions[agent], signing)
        core: Core
        if window.behaviour == "equivocate":
            lying = Hooks(mine.alternative, mine.validate, mine.reject, lambda s: (mine.alternative(s), 1.0))
            core = SplitBrainCore(agent, (build(agent, truthful, None), build(agent, lying, None)), collusion)
        else:
            inner = build(agent, truthful, restore)
            signer = keyring.signer(agent)
            core = ByzantineCore(inner, window.behaviour, signer, peers, mine, rng)
        return TimedByzantine(core, window, activity)

    kinds, slotted = frozenset(method.decision_kinds), frozenset(method.slotted_kinds)
    per_slot: Counter[int] = Counter()
    per_slot_bytes: Counter[int] = Counter()
    decision: Counter[str] = Counter()  # messages and bytes of the decision kinds, whatever their slot

    def observe(m: Message) -> None:
        if m.kind in kinds:
            decision["messages"] += 1
            decision["bytes"] += m.size()
            if m.kind in slotted and 0 <= m.slot < slots:
                per_slot[m.slot] += 1
                per_slot_bytes[m.slot] += m.size()

    net = Network(peers, factory, keyring, seed, resolved.network, observe)
    ledger.net = net
    for agent, window in resolved.byzantine.items():
        net.call_at(window.start, record_window_edge(net, agent, window, activity))
        if window.end != math.inf:
            net.call_at(window.end, record_window_edge(net, agent, window, activity))

    def all_decided() -> bool:
        return all(len(net.decisions[a]) >= slots for a in honest if net.is_up(a))

    snapshot: dict[str, Accounting] = {}  # the messages sent until every honest agent that is up decided

    def note_decided() -> bool:
        done = all_decided()
        if done and not snapshot:
            snapshot.update(stats=_copy(net.stats))
        return done

    edges = [f.start for f in resolved.faults] + [f.end for f in resolved.faults if f.end != math.inf]
    observe_until = min(max(edges, default=0.0), inputs.max_time)
    net.run(observe_until, stop=lambda: note_decided() and False)
    if not note_decided():
        net.run(inputs.max_time, stop=note_decided)
    if not snapshot:
        snapshot.update(stats=_copy(net.stats))  # never all decided: the whole run's messages
    up = [a for a in honest if net.is_up(a)]
    finished = bool(up) and all(len(net.decisions[a]) >= slots for a in up)
    all_decided_at = max((t for a in up for t in net.decided_at[a].values()), default=None) if finished else None

    quorum = majority(n) if method.fault_model == "crash" else byzantine_quorum(n)
    job_records, violations, certs = _jobs(net, method, plan, honest, views, ledger, positions, per_slot,
                                           per_slot_bytes, signing, quorum)
    violations += [f"integrity: agent {a} decided slot {s} twice" for a, s, _, _ in net.conflicts if a in honest]
    records = fault_log(resolved, net, activity)
    log = [{**_fault_dict(r), "source": plan.sources[r.fault]} for r in records]
    llm = LLMTally()
    for tally in ledger.llm.values():
        llm.add(tally)
    via: Counter[str] = Counter()
    for counts in ledger.via.values():
        via.update(counts)
    stats_at_decision: Accounting = snapshot["stats"]
    record = {
        "method": method.name,
        "fault_model": method.fault_model,
        "repetition": plan.repetition,
        "seed": seed,
        "agents": n,
        "byzantine_agents": [{"agent": a, "behaviour": b} for a, b in plan.byzantine_agents.items()],
        "crashed_agents": plan.crashed_agents,
        "honest_agents": list(honest),
        "jobs": job_records,
        "all_decided_at": all_decided_at,
        "end_time": net.now,
        "messages_to_decision": _accounting(stats_at_decision),
        "messages_run": _accounting(net.stats),
        "decision_messages": decision["messages"],
        "decision_bytes": decision["bytes"],
        "llm": llm.as_dict(),
        "proposals_via": dict(sorted(via.items())),
        "violations": violations,
        "faults_scheduled": len(records),
        "faults_applied": sum(1 for r in records if r.applied),
        "faults_not_applied": check_applied(records),
        "beyond_tolerance": over_tolerance(resolved, plan.tolerates),
        "history_hash": net.history_hash(),
    }
    return RunOutcome(record, log, llm, {"keys": signing.public_keys(), "jobs": certs})


def _jobs(net: Network, method: Method, plan: RepetitionPlan, honest: tuple[AgentId, ...], views: ClusterViews,
          ledger: ProposalLog, positions: dict[AgentId, dict[int, int | None]], per_slot: Counter[int],
          per_slot_bytes: Counter[int], signing: Signing,
          quorum: int) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """Per-job results, the agreement and validity violations, and each commit's certificate, replaying
    decisions in slot order. A placement commits only with a certificate: decided by the agents but
    signed by fewer than ``quorum`` of them, it is ``uncertified``."""
    jobs = views.jobs
    certificates: dict[str, Any] = {}
    decisions = {a: dict(net.decisions[a]) for a in honest}
    violations = check_agreement(decisions)
    up = [a for a in honest if net.is_up(a)]
    applied: list[Value | None] = []
    records = []
    for slot, job in enumerate(jobs):
        held = {a: decisions[a][slot] for a in honest if slot in decisions[a]}
        distinct: dict[str, Value] = {}
        for a in sorted(held):
            distinct.setdefault(digest_of(held[a]), held[a])
        key, state = views.state(applied)
        chosen = next(iter(distinct.values()), None)
        static = {d: _static(views, slot, v) for d, v in distinct.items()}
        for d, value in distinct.items():
            if not static[d].ok:
                violations.append(f"validity: {job.id} (slot {slot}): a decided value fails the feasibility check "
                                  f"on the empty cluster: {static[d].summary()}")
            if not ledger.origins(slot, value):
                violations.append(f"validity: {job.id} (slot {slot}): decided a value no agent proposed")
        lacking = [a for a in up if slot not in decisions[a]]
        refused = None
        if len(distinct) > 1:
            outcome = "conflict"
        elif not held:
            outcome = "undecided"
        elif lacking:
            outcome = "partial"
        elif not static[digest_of(chosen)].ok:
            outcome = "infeasible"
        elif isinstance(chosen, PlacementValue) and chosen.placement is None:
            outcome = "reject"
        else:
            at_apply = views.verdict(key, state, slot, chosen)  # type: ignore[arg-type]
            outcome = "commit" if at_apply.ok else "refused"
            refused = None if at_apply.ok else at_apply.summary()
            cert = signing.certificate(slot, chosen, quorum, len(net.decisions)) if at_apply.ok else None
            if cert is not None:
                certificates[job.id] = cert.model_dump(mode="json")
            elif outcome == "commit":
                outcome = "uncertified"
        unjustified = (outcome == "reject" and isinstance(chosen, PlacementValue)
                       and not views.verdict(key, state, slot, chosen).ok)
        times = [net.decided_at[a][slot] for a in held]
        first = min(times) if times else None
        origins = ledger.origins(slot, chosen) if chosen is not None else {}
        until = first if first is not None else net.now
        active = [f.index for f in plan.resolved.faults if f.start <= until and f.end > 0.0]
        at = [p for a in held if (p := positions[a].get(slot)) is not None]
        llm = ledger.llm.get(slot, LLMTally())
        records.append({
            "job_id": job.id,
            "slot": slot,
            "kind": job.kind,
            "request": job.describe(),
            "outcome": outcome,
            "placement": _placement(state, chosen),
            "reason": chosen.reason if isinstance(chosen, PlacementValue) else None,
            "refused_because": refused,
            "reject_while_feasible": unjustified,
            "values_decided": len(distinct),
            "decided_by": len(held),
            "honest_up": len(up),
            "first_decided_at": first,
            "all_decided_at": max(times) if times and not lacking else None,
            method.progress_label.replace(" ", "_"): max(at) if at else None,
            "proposed_by": {k: sorted(v) for k, v in sorted(origins.items())},
            "byzantine_value": bool(origins) and "honest" not in origins,
            "slot_messages": per_slot[slot],
            "slot_bytes": per_slot_bytes[slot],
            "faults_active": active,
            "llm_calls": llm.calls,
            "llm_tokens": llm.tokens_in + llm.tokens_out,
        })
        applied.append(chosen)
    return records, violations, certificates


def _static(views: ClusterViews, slot: int, value: Value) -> Feasibility:
    """The check no honest validator can fail whatever the order: on the cluster as it started.
    A reject cannot over-allocate; whether one was justified is judged at execution."""
    if isinstance(value, PlacementValue) and value.placement is None and value.job_id == views.jobs[slot].id:
        return Feasibility(True)
    return views.verdict((), views.base, slot, value)


def _placement(state: ClusterState, value: Value | None) -> dict[str, Any] | None:
    if not isinstance(value, PlacementValue) or value.placement is None:
        return None
    nodes = list(value.placement)
    return {"pool": state.pool_of.get(nodes[0]) if nodes else None, "nodes": nodes}


def _copy(stats: Accounting) -> Accounting:
    return Accounting(Counter(stats.sent), Counter(stats.sent_bytes), Counter(stats.delivered), Counter(stats.dropped),
                      stats.duplicated, stats.corrupted, stats.rejected, Counter(stats.fault_effects))


def _accounting(stats: Accounting) -> dict[str, Any]:
    return {
        "total": stats.total_sent,
        "bytes": stats.total_bytes,
        "by_kind": {str(k): v for k, v in sorted(stats.sent.items())},
        "bytes_by_kind": {str(k): v for k, v in sorted(stats.sent_bytes.items())},
        "delivered": sum(stats.delivered.values()),
        "dropped": {k: v for k, v in sorted(stats.dropped.items())},
        "duplicated": stats.duplicated,
        "corrupted": stats.corrupted,
        "rejected_by_mac": stats.rejected,
    }


def _fault_dict(r: Any) -> dict[str, Any]:
    def t(x: float | None) -> float | None:
        return None if x is None or x == math.inf else x

    return {"fault": r.fault, "type": r.type, "targets": list(r.targets), "start": r.start, "end": t(r.end),
            "started_at": t(r.started_at), "ended_at": t(r.ended_at), "applied": r.applied,
            "effects": dict(r.effects), "describe": r.describe()}
