"""``--verify RUN_ID``: check every quorum certificate of a stored run, offline.

For each committed placement, in the order it was committed: the certificate's digest must be the
placement's own (recomputed from the ledger's placement rows), and it must hold valid Ed25519
signatures over "accept this placement, in this run, job and round" from at least a Byzantine
quorum of the run's members, each made with the key the run stored for that agent and key epoch.
A reputation-weighted run's certificate records the weights its tally used; they must be the
reputations the ledger's own trail of changes gives at some point of that job, and the signed
weight must reach q/n of the total.

What this proves, and what it does not: an edit to a placement, a certificate, a signature or a vote
since the run committed it fails the check. Someone who replaces the run's public keys as well and
signs everything again is caught only by comparing the key fingerprint printed here with one kept
elsewhere (the ledger is one unsigned file: whoever may rewrite all of it may rewrite the keys).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llm_sched.core.decisions import Certificate
from llm_sched.core.signing import PublicKeys
from llm_sched.engine.awards import check_packed, packed_keys
from llm_sched.errors import UserError
from llm_sched.protocols.certificate import check_certificate
from llm_sched.protocols.quorum import byzantine_quorum
from llm_sched.store.ledger import DecisionRecord, Ledger, RunInfo, StoreError


@dataclass(frozen=True, slots=True)
class Verified:
    """A run whose every commit carries a valid certificate, and how they were checked (in words)."""

    run: RunInfo
    certificates: int
    quorum: str  # how the quorum was counted
    keys: str  # which keys signed
    key_fingerprint: str

    def describe(self) -> str:
        n = self.certificates
        return (f"run {self.run.run_id} ({self.run.name}): {n} of {n} committed placements carry a valid quorum "
                f"certificate ({self.quorum}, Ed25519 signatures, {self.keys})\n"
                f"public keys: sha256 {self.key_fingerprint}")


class VerifyFailed(UserError):
    """A certificate of the run does not hold (exit 1)."""

    exit_code = 1


def key_fingerprint(keys: Sequence[PublicKeys]) -> str:
    """SHA-256 of the run's public-key tables: compare it with a copy kept elsewhere."""
    text = "\n".join(f"{k.run} {epoch} {agent} {key}" for k in keys for epoch, agent, key in k.table())
    return hashlib.sha256(text.encode()).hexdigest()


def verify_run(ledger_path: Path, run_id: str) -> Verified:
    """Check every certificate of ``run_id``; raises :class:`VerifyFailed` at the first bad one."""
    with Ledger.open(ledger_path) as ledger:
        run = ledger.run(run_id)
        if run is None:
            raise StoreError(f"no run {run_id} in the ledger {ledger_path} (python main.py --runs lists them)")
        if run.kind == "experiment":
            return _verify_experiment(run, ledger.units(run_id))
        if run.kind == "campaign":
            return _verify_campaign(run, ledger.units(run_id))
        if run.kind != "scenario":
            raise VerifyFailed(f"run {run_id} is a {run.kind}: --verify checks scenario, experiment and campaign runs")
        try:
            keys = PublicKeys(run_id, ledger.keys(run_id))
        except ValueError as exc:
            raise VerifyFailed(f"run {run_id}: {exc}") from None
        decisions = ledger.decisions(run_id)
    epochs = sorted({epoch for epoch, _, _ in keys.table()})
    if not epochs:
        raise VerifyFailed(f"run {run_id} has no public keys stored: it was made before votes were signed, so "
                           "its decisions carry no certificates to check")
    members = keys.agents(epochs[0])
    for epoch in epochs[1:]:
        if keys.agents(epoch) != members:
            raise VerifyFailed(f"run {run_id}: the members of key epoch {epoch} differ from those of epoch {epochs[0]}")
    weighted = bool(run.config.get("weighted"))
    trail = _Trail(members)
    count = 0
    for d in decisions:
        if d.outcome == "commit":
            _check_one(run_id, d, keys, members, weighted, trail)
            count += 1
        trail.apply(d)
    n = len(members)
    quorum = "reputation-weighted quorum (q/n of the weight)" if weighted else f"quorum {byzantine_quorum(n)} of {n}"
    return Verified(run, count, quorum, f"key epoch{'s' if len(epochs) > 1 else ''} {', '.join(map(str, epochs))}",
                    key_fingerprint([keys]))


def _verify_experiment(run: RunInfo, units: dict[str, dict[str, Any]]) -> Verified:
    """Every committed job of every stored unit (method, repetition) against its decision certificate."""
    if not units:
        raise VerifyFailed(f"run {run.run_id} has no finished units stored yet: nothing to check")
    tables, count = [], 0
    for name, unit in sorted(units.items()):
        where = f"run {run.run_id}, unit {name}"
        record, blob = json.loads(unit["record"]), unit.get("certificates")
        if blob is None:
            raise VerifyFailed(f"{where}: no certificates stored (recorded before decisions were signed)")
        stored = json.loads(blob)
        keys = PublicKeys(unit_context(record), [(0, agent, key) for agent, key in sorted(stored["keys"].items())])
        members = [str(a) for a in range(record["agents"])]
        if keys.agents(0) != sorted(members):
            raise VerifyFailed(f"{where}: the public keys are not those of its {record['agents']} agents")
        for job in record["jobs"]:
            if job["outcome"] != "commit":
                continue
            cert = stored["jobs"].get(job["job_id"])
            placement = job["placement"]
            problem = check_certificate(Certificate.model_validate(cert) if cert else None, keys, job["job_id"],
                                        placement["pool"], placement["nodes"], members,
                                        crash_only=record["fault_model"] == "crash")
            if problem is not None:
                raise VerifyFailed(f"{where}, job {job['job_id']}: {problem}")
            count += 1
        tables.append(keys)
    quorum = "quorum by protocol: Byzantine q of n, a majority for Raft and Multi-Paxos"
    return Verified(run, count, quorum, f"one key set per unit, {len(units)} units", key_fingerprint(tables))


def _verify_campaign(run: RunInfo, units: dict[str, dict[str, Any]]) -> Verified:
    """Every award of the agents policy in every stored task (configuration, repetition)."""
    if not units:
        raise VerifyFailed(f"run {run.run_id} has no finished tasks stored yet: nothing to check")
    tables, count, checked = [], 0, 0
    for name, unit in sorted(units.items()):
        agents = unit.get("metrics", {}).get("agents")
        if agents is None:
            continue  # a campaign without the agents policy: central decisions carry no certificates
        packed = unit.get("certificates")
        where = f"run {run.run_id}, task {name}"
        if packed is None:
            raise VerifyFailed(f"{where}: no certificates stored (recorded before the agents' awards were signed)")
        n, problem = check_packed(packed, int(agents["decisions"]))
        if problem is not None:
            raise VerifyFailed(f"{where}: {problem}")
        count += n
        checked += 1
        tables.append(packed_keys(packed))  # well formed: check_packed read them
    if not checked:
        raise VerifyFailed(f"run {run.run_id} has no agents policy: its central decisions carry no certificates")
    return Verified(run, count, "Byzantine quorum q of the k agents", f"one key set per agents run, {checked} runs",
                    key_fingerprint(tables))


def unit_context(record: dict[str, Any]) -> str:
    """What an experiment unit's signatures are bound to: its method, repetition and seed."""
    return f"experiment/{record['method']}/{record['repetition']}/{record['seed']}"


def _check_one(run_id: str, d: DecisionRecord, keys: PublicKeys, members: list[str], weighted: bool,
               trail: _Trail) -> None:
    where = f"run {run_id}, job {d.job_id} (decision {d.seq + 1})"
    try:
        cert = Certificate.model_validate(d.certificate) if d.certificate is not None else None
    except ValidationError as exc:
        raise VerifyFailed(f"{where}: the stored certificate is malformed ({exc.error_count()} problems)") from None
    if d.pool is None:
        raise VerifyFailed(f"{where}: a commit without a placement")
    problem = check_certificate(cert, keys, d.job_id, d.pool, d.nodes, members, weighted)
    if problem is None and weighted and cert is not None and not trail.explains(d, cert.weights or {}):
        problem = "its weights are not the reputations the ledger's trail of changes gives for this job"
    if problem is not None:
        raise VerifyFailed(f"{where}: {problem}")


class _Trail:
    """The reputations the ledger's stored changes give, replayed from every member at 1.0."""

    def __init__(self, members: list[str]) -> None:
        self.scores = {a: 1.0 for a in members}

    def apply(self, d: DecisionRecord) -> None:
        for change in d.reputation_changes:
            self.scores[change.agent] = change.new

    def explains(self, d: DecisionRecord, weights: dict[str, float]) -> bool:
        """True when ``weights`` are the reputations after some prefix of the job's changes."""
        scores = dict(self.scores)
        if scores == weights:
            return True
        for change in d.reputation_changes:
            scores[change.agent] = change.new
            if scores == weights:
                return True
        return False
