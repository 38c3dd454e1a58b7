"""Reputation-weighted voting with a rotating coordinator, as a sans-IO core.

Each slot runs in rounds; the coordinator of round r is ``peers[(slot + r) % n]``. Normal case,
votes to the coordinator and certificates from it (linear, like HotStuff):

1. the coordinator sends WEIGHTED-PROPOSAL(value) to the n-1 others;
2. each agent sends a signed WEIGHTED-VOTE, accept or reject, to the coordinator;
3. once the accepting weight (its own included) reaches ``weighted_quorum_met`` of the total
   weight, the coordinator sends LOCK-CERT (value plus those votes) to the n-1 others;
4. each agent that checks the certificate locks on the value and sends COMMIT-VOTE back;
5. the same weight of commit votes makes the coordinator send COMMIT-CERT; every agent decides.

Messages per decision: 5(n-1) (n=4: 15, n=5: 20, n=7: 30, n=10: 45), five message delays.

Why two vote phases and not "propose, vote, commit at quorum" (2(n-1) or n^2-1, two delays): with
rounds, an agent may decide in round r while the others time out and a new coordinator proposes
another value. One vote phase cannot stop that at n = 3f+1: an honest voter for the decided value
and a Byzantine voter for another look the same to the next coordinator (deciding two message
delays after the proposal needs n >= 5f-1, Abraham, Nayak, Ren and Xiang, PODC 2021). So, as in
Tendermint: an agent locks on a value when it sees a lock certificate, only accepts a proposal of
another value if it carries a lock certificate from a round at least as recent as its own lock,
and commits only through the second phase, whose quorum guarantees enough locked honest weight.

Round change: a round ends by timeout (round r lasts ``base_timeout * 2**min(r, max_backoff)``),
or at once when the coordinator holds rejections that leave no quorum possible (ROUND-FAILED with
those rejections). Entering round r > 0, an agent broadcasts NEW-ROUND(r) with its lock
certificate: n(n-1) messages. The new coordinator waits for a quorum of them, then ``collect``
longer or until all n arrived (so after GST it sees every honest lock), and re-proposes the most
recent locked value with its certificate, or else a fresh value. A weight of at least a third of
the total in later rounds includes an honest agent: the others follow to that round. An agent
behind by a slot broadcasts NEW-ROUND on its timeouts and gets the commit certificates it lacks.

Fault model: Byzantine, safe as long as the faulty weight is below a third of the total (a quorum
is q/n of the weight with q = ceil((n+f+1)/2) >= 2n/3, so two quorums overlap in at least a third
of the weight, which faulty weight alone cannot fill). Live after GST when the honest weight alone
reaches the quorum (with equal weights: up to f faulty agents) and honest agents agree on
feasibility (``validate`` runs against the same state): a value that some honest agents refuse
can, with faulty votes, be locked and then neither committed nor replaced. Weights are the
agents' reputations: a liar with a low weight cannot tip a vote that it could tip with an equal
share.

This module also holds the machinery bidding and negotiation reuse (they are this protocol with
equal weights, whose coordinator forms its proposal differently). Subclasses override
``_open`` and ``_collected`` (what the coordinator does), ``_acceptable`` and ``_committable``
(what an honest agent accepts and commits), ``_respond`` and ``_is_refusal`` (how it refuses), and
``_report_extras``, ``_absorb_report`` and ``_absorb_refusals`` (what round changes carry).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from llm_sched.protocols.core_base import BftCore
from llm_sched.protocols.messages import BROADCAST, NIL, AgentId, Cert, Kind, Message, Output, Value, digest_of
from llm_sched.protocols.quorum import weighted_quorum_met

ACCEPT, REJECT = b"accept", b"reject"


@dataclass(frozen=True, slots=True)
class WeightedConfig:
    """Weights by agent (missing agents weigh 1) and timers in simulated time units.

    ``quorum_fraction`` overrides q/n only to show that a too-small quorum breaks safety.
    """

    weights: Mapping[AgentId, float] = field(default_factory=dict)
    base_timeout: float = 20.0
    max_backoff: int = 5
    collect: float = 4.0
    quorum_fraction: float | None = None

    @classmethod
    def equal_weights(
        cls, n: int, base_timeout: float, max_backoff: int, collect: float, quorum: int | None
    ) -> WeightedConfig:
        """Equal weights among n agents, as bidding and negotiation vote: their ``quorum``
        override counts agents, which with equal weights is the share quorum/n of the total."""
        return cls({}, base_timeout, max_backoff, collect, None if quorum is None else quorum / n)


@dataclass(frozen=True, slots=True)
class WeightedPersisted:
    """Durable state: position, lock, decisions and their commit certificates.

    A restarted agent resumes in the next round, so it never votes twice in a round it may
    already have voted in; votes and reports of others are lost and re-sent by the round change.
    """

    slot: int
    round: int
    lock: Cert | None  # a lock certificate: accepting votes of one round for one value
    decided: Mapping[int, Value]
    certs: Mapping[int, Message]


@dataclass(slots=True)
class _Round:
    """What one agent did and saw in the current round of the current slot."""

    voted: bool = False
    commit_voted: bool = False
    opened: bool = False  # coordinator: proposal (or its first step) sent
    proposal: Message | None = None  # coordinator: its own proposal
    accepts: dict[AgentId, Message] = field(default_factory=dict)
    refusals: dict[AgentId, Message] = field(default_factory=dict)
    commits: dict[AgentId, Message] = field(default_factory=dict)
    locked: Cert | None = None  # coordinator: the lock it certified
    closed: bool = False  # coordinator: committed or failed


def _round_payload(r: int) -> bytes:
    return str(r).encode()


def _parse_round(payload: bytes) -> int | None:
    try:
        r = int(payload.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return r if r >= -1 else None


class WeightedCore(BftCore[WeightedConfig, WeightedPersisted]):
    """One agent of reputation-weighted voting deciding slots 0 .. slots-1 in order."""

    PROPOSAL_KIND: ClassVar[Kind] = Kind.WEIGHTED_PROPOSAL
    DEFAULT_CONFIG: ClassVar[WeightedConfig] = WeightedConfig()

    def _setup(self) -> None:
        """An agent that has not started: slot 0, round 0, no lock; the round timer is ``_deadline``."""
        self.weights = {p: float(self.config.weights.get(p, 1.0)) for p in self.peers}
        self.total = sum(self.weights.values())
        if self.total <= 0 or any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must be non-negative with a positive total")
        self.slot, self.round = 0, 0
        self._decided_round: dict[int, int] = {}  # slot -> the round that decided it
        self._lock: Cert | None = None  # accepting votes of one round for one value, weighing a quorum
        self._certs: dict[int, Message] = {}
        self._collect_at: float | None = None
        self._resume_round = 0
        self._future: dict[int, list[Message]] = {}  # messages of slots not yet reached
        self._reset_slot()

    def _restore(self, saved: WeightedPersisted) -> None:
        self.slot, self._lock = saved.slot, saved.lock
        self._decided, self._certs = dict(saved.decided), dict(saved.certs)
        self._resume_round = saved.round + 1
        self._reset_slot()  # the restored slot's round state starts afresh, from the restored lock

    # --- public interface -------------------------------------------------------------------

    def coordinator(self, slot: int, round_: int) -> AgentId:
        """Round-robin coordinator by (slot + round), like Tendermint's proposer."""
        return self.peers[(slot + round_) % self.n]

    def quorum_met(self, weight: float) -> bool:
        """True when ``weight`` reaches the quorum share of the total weight."""
        fraction = self.config.quorum_fraction
        if fraction is None:
            return weighted_quorum_met(weight, self.total, self.n)
        return weight >= fraction * self.total - 1e-9

    def next_deadline(self) -> float | None:
        """The round timer, or the coordinator's end of collection if earlier."""
        times = [t for t in (self._deadline, self._collect_at) if t is not None]
        return min(times) if times else None

    def rounds_reached(self) -> int:
        return self._decided_round.get(0, self.round if self.slot == 0 else 0)

    def persisted(self) -> WeightedPersisted:
        """Snapshot of the durable state (see :class:`WeightedPersisted`)."""
        return WeightedPersisted(self.slot, self.round, self._lock, dict(self._decided), dict(self._certs))

    def _start(self, out: Output) -> None:
        """The first tick starts round 0 (a restarted agent: the round after its last)."""
        if not self.done:
            self._enter_round(self._resume_round, out)

    def _on_tick(self, out: Output) -> None:
        """The coordinator's collection wait ends; a due round timer ends the round."""
        if self._collect_at is not None and self._now >= self._collect_at:
            self._collect_at = None
            self._collected(out)
        if self._timer_due() and not self.done:
            self._enter_round(self.round + 1, out)

    def _receive(self, msg: Message, out: Output) -> None:
        self._route(msg, out)  # by slot, then by round and kind

    # --- rounds ---------------------------------------------------------------------------------

    def _reset_slot(self) -> None:
        self._rs = _Round()
        self._reports: dict[int, dict[AgentId, Message]] = {}  # round -> NEW-ROUND by sender
        self._highest: dict[AgentId, int] = {}  # highest round each agent announced
        self._best: Cert | None = self._lock  # most recent lock certificate seen
        self._later: dict[int, list[Message]] = {}  # messages of rounds not yet entered

    def _enter_round(self, r: int, out: Output) -> None:
        self.round, self._rs, self._collect_at = r, _Round(), None
        backoff = min(r, self.config.max_backoff)
        self._deadline = self._now + self.config.base_timeout * 2**backoff
        if r > 0:
            self._announce_round(r, out)
        if self.coordinator(self.slot, r) == self.node_id:
            if r == 0:
                self._open(out)
            else:
                self._maybe_collect()
        waiting = self._later.pop(r, [])
        self._later = {k: ms for k, ms in self._later.items() if k > r}
        for m in waiting:
            self._route(m, out)  # by slot and round again: an earlier one may have moved us on

    def _announce_round(self, r: int, out: Output) -> None:
        """Broadcast NEW-ROUND(r) with our lock, so the coordinator can re-propose it."""
        lock = self._lock
        digest, value = (NIL, None) if lock is None else (lock.digest, lock.value)
        payload = _round_payload(-1 if lock is None else lock.view)
        proof = (() if lock is None else lock.messages) + self._report_extras()
        own = self._broadcast(Kind.NEW_ROUND, r, self.slot, digest, out, value, payload, proof)
        self._reports.setdefault(r, {})[self.node_id] = own
        self._highest[self.node_id] = r

    def _maybe_collect(self) -> None:
        """Coordinator of a later round: open once every agent reported, or ``collect`` after a
        quorum did (waiting a little longer is what lets it see every honest lock after GST)."""
        rs = self._rs
        if rs.opened or self.coordinator(self.slot, self.round) != self.node_id:
            return
        reports = self._reports.get(self.round, {})
        if len(reports) == self.n:
            self._collect_at = self._now
        elif self._collect_at is None and self.quorum_met(self._weight(reports)):
            self._collect_at = self._now + self.config.collect

    def _collected(self, out: Output) -> None:
        """The collection wait is over (subclasses wait for more than reports)."""
        if not self._rs.opened:
            self._open(out)

    def _maybe_jump(self, out: Output) -> None:
        """A third of the weight in later rounds includes an honest agent: follow it there."""
        ranked = sorted(self._highest.items(), key=lambda kv: -kv[1])
        weight = 0.0
        for agent, r in ranked:
            if r <= self.round:
                return
            weight += self.weights[agent]
            if weight >= self.total / 3 - 1e-9:
                self._enter_round(r, out)
                return

    # --- proposing and voting -------------------------------------------------------------------

    def _open(self, out: Output) -> None:
        """Coordinator: re-propose the most recent lock, else the application's value."""
        self._rs.opened = True
        lock = self._best
        if lock is not None:
            self._send_proposal(lock.value, lock.view, lock.messages, out)
        else:
            self._send_proposal(self._propose_fn(self.slot), -1, (), out)

    def _send_proposal(self, value: Value, vr: int, proof: tuple[Message, ...], out: Output) -> None:
        """Broadcast the round's proposal; the coordinator's own accept counts at once."""
        rs = self._rs
        rs.opened, rs.voted = True, True
        d = digest_of(value)
        payload = _round_payload(vr)
        rs.proposal = self._broadcast(self.PROPOSAL_KIND, self.round, self.slot, d, out, value, payload, proof)
        if self._committable(value):  # the feasibility guard binds the coordinator too
            own = self._signer.make(BROADCAST, Kind.WEIGHTED_VOTE, self.round, self.slot, d, payload=ACCEPT)
            rs.accepts[self.node_id] = own
            self._maybe_lock(out)

    def _on_proposal(self, msg: Message, out: Output) -> None:
        if msg.sender != self.coordinator(self.slot, self.round) or self._rs.voted:
            return  # only the coordinator proposes; a second proposal is equivocation
        self._rs.voted = True
        self._respond(msg, self._judge(msg), out)

    def _judge(self, msg: Message) -> bool:
        """Accept a well-formed proposal that our lock allows and the application accepts."""
        value, vr = msg.value, _parse_round(msg.payload)
        if value is None or digest_of(value) != msg.digest or vr is None:
            return False
        justified = vr >= 0
        if justified and (vr >= msg.view or self._lock_from(vr, msg.digest, value, msg.proof) is None):
            return False
        lock = self._lock
        if lock is not None and lock.digest != msg.digest and vr < lock.view:
            return False  # locked on another value, and no newer lock certificate overrides ours
        return self._acceptable(msg, justified)

    def _acceptable(self, msg: Message, justified: bool) -> bool:
        """The application's verdict on a proposal (bidding and negotiation check more)."""
        assert msg.value is not None
        return self._validate(self.slot, msg.value)

    def _committable(self, value: Value) -> bool:
        """May an honest agent lock on and commit this value? (The feasibility guard.)"""
        return self._validate(self.slot, value)

    def _respond(self, msg: Message, accept: bool, out: Output) -> None:
        """Our signed vote on the round's proposal, to its coordinator."""
        payload = ACCEPT if accept else REJECT
        vote = self._signer.make(msg.sender, Kind.WEIGHTED_VOTE, msg.view, self.slot, msg.digest, payload=payload)
        out.messages.append(vote)

    def _is_refusal(self, m: Message) -> bool:
        return m.kind is Kind.WEIGHTED_VOTE and m.payload == REJECT

    def _report_extras(self) -> tuple[Message, ...]:
        """Signed messages a NEW-ROUND carries besides the lock (negotiation: our counter)."""
        return ()

    def _on_vote(self, msg: Message, out: Output) -> None:
        rs = self._rs
        if msg.view != self.round or rs.proposal is None or msg.digest != rs.proposal.digest:
            return
        if msg.payload == ACCEPT:
            rs.accepts.setdefault(msg.sender, msg)
            self._maybe_lock(out)
        elif self._is_refusal(msg):
            self._refused(msg, out)

    def _refused(self, msg: Message, out: Output) -> None:
        """Coordinator: count a refusal; if no quorum can accept any more, end the round now."""
        rs = self._rs
        rs.refusals.setdefault(msg.sender, msg)
        if rs.closed or rs.locked is not None or self.quorum_met(self.total - self._weight(rs.refusals)):
            return
        rs.closed = True
        refusals = tuple(rs.refusals[p] for p in sorted(rs.refusals))
        d = rs.proposal.digest if rs.proposal else NIL
        self._broadcast(Kind.ROUND_FAILED, self.round, self.slot, d, out, proof=refusals)
        self._enter_round(self.round + 1, out)

    def _maybe_lock(self, out: Output) -> None:
        rs = self._rs
        if rs.locked is not None or rs.closed or rs.proposal is None or rs.proposal.value is None:
            return
        if not self.quorum_met(self._weight(rs.accepts)):
            return
        votes = tuple(rs.accepts[p] for p in sorted(rs.accepts))
        lock = Cert(self.round, self.slot, rs.proposal.digest, rs.proposal.value, votes)
        rs.locked = lock
        self._broadcast(Kind.LOCK_CERT, self.round, self.slot, lock.digest, out, lock.value, proof=votes)
        self._take_lock(lock, out)

    def _on_lock_cert(self, msg: Message, out: Output) -> None:
        lock = self._lock_from(msg.view, msg.digest, msg.value, msg.proof)
        if lock is None or not self._committable(lock.value):
            return
        if msg.view > self.round:
            self._enter_round(msg.view, out)  # a certificate proves that round is under way
        if msg.view == self.round:
            self._take_lock(lock, out)
        else:
            self._raise_lock(lock)

    def _take_lock(self, lock: Cert, out: Output) -> None:
        """Lock on the current round's certified value and send our commit vote."""
        rs = self._rs
        self._raise_lock(lock)
        if rs.commit_voted:
            return
        rs.commit_voted = True
        leader = self.coordinator(self.slot, self.round)
        if leader != self.node_id:
            out.messages.append(self._signer.make(leader, Kind.COMMIT_VOTE, self.round, self.slot, lock.digest))
            return
        rs.commits[self.node_id] = self._signer.make(BROADCAST, Kind.COMMIT_VOTE, self.round, self.slot, lock.digest)
        self._maybe_commit(out)

    def _raise_lock(self, lock: Cert) -> None:
        """Keep the most recent lock: it only narrows what we accept, and helps a coordinator."""
        if self._lock is None or lock.view > self._lock.view:
            self._lock = lock
        if self._best is None or lock.view > self._best.view:
            self._best = lock

    def _on_commit_vote(self, msg: Message, out: Output) -> None:
        rs = self._rs
        if msg.view == self.round and rs.locked is not None and msg.digest == rs.locked.digest:
            rs.commits.setdefault(msg.sender, msg)
            self._maybe_commit(out)

    def _maybe_commit(self, out: Output) -> None:
        rs = self._rs
        lock = rs.locked
        if lock is None or rs.closed or not self.quorum_met(self._weight(rs.commits)):
            return
        rs.closed = True
        votes = tuple(rs.commits[p] for p in sorted(rs.commits))
        cert = self._broadcast(Kind.COMMIT_CERT, self.round, self.slot, lock.digest, out, lock.value, proof=votes)
        self._decide(lock.value, cert, out)

    def _on_commit_cert(self, msg: Message, out: Output) -> None:
        value = msg.value
        if value is None or digest_of(value) != msg.digest:
            return
        if self._certified(msg.proof, Kind.COMMIT_VOTE, msg.view, msg.digest):
            self._decide(value, msg, out)

    def _on_round_failed(self, msg: Message, out: Output) -> None:
        if msg.view < self.round or not self._refusals_ok(msg):
            return
        self._absorb_refusals(msg.proof)
        self._enter_round(msg.view + 1, out)

    def _refusals_ok(self, msg: Message) -> bool:
        """Signed refusals of the round from distinct agents, leaving no quorum to accept."""
        senders = {m.sender for m in msg.proof}
        if len(senders) != len(msg.proof) or not senders <= set(self.peers):
            return False
        for m in msg.proof:
            if m.slot != self.slot or m.view != msg.view or not self._is_refusal(m) or not self._keyring.verify(m):
                return False
        return not self.quorum_met(self.total - self._weight(senders))

    def _absorb_refusals(self, refusals: Iterable[Message]) -> None:
        """What a subclass learns from other agents' refusals (negotiation: their counters)."""

    def _on_new_round(self, msg: Message, out: Output) -> None:
        r, lock = msg.view, None
        if r <= 0:
            return
        votes = tuple(m for m in msg.proof if m.kind is Kind.WEIGHTED_VOTE)
        vr = _parse_round(msg.payload)
        if vr is None or (vr >= 0) != bool(votes):
            return
        if vr >= 0:
            lock = self._lock_from(vr, msg.digest, msg.value, votes)
            if lock is None or vr >= r:
                return
        self._absorb_report(msg)
        self._reports.setdefault(r, {}).setdefault(msg.sender, msg)
        self._highest[msg.sender] = max(r, self._highest.get(msg.sender, 0))
        if lock is not None and (self._best is None or lock.view > self._best.view):
            self._best = lock
        if r > self.round:
            self._maybe_jump(out)
        elif r == self.round:
            self._maybe_collect()

    def _absorb_report(self, msg: Message) -> None:
        """What a subclass takes from a NEW-ROUND besides the lock (negotiation: a counter)."""

    # --- deciding and catching up ----------------------------------------------------------------

    def _decide(self, value: Value, cert: Message, out: Output) -> None:
        s = self.slot
        self._decided[s], self._certs[s] = value, cert
        self._decided_round[s] = self.round
        out.decisions.append((s, value))
        self.slot, self._lock = s + 1, None
        self._reset_slot()
        if self.done:
            self._deadline = self._collect_at = None
            return
        self._enter_round(0, out)
        for m in self._future.pop(self.slot, []):
            self._route(m, out)  # by slot again: one of them may decide this slot too

    def _help_laggard(self, msg: Message, out: Output) -> None:
        """A peer still in an older slot asked for a new round: send it what we decided since."""
        if msg.kind is not Kind.NEW_ROUND:
            return
        for s in range(msg.slot, self.slot):
            cert = self._certs.get(s)
            if cert is not None:
                copy = self._signer.make(msg.sender, Kind.COMMIT_CERT, cert.view, s, cert.digest, cert.value,
                                         proof=cert.proof)
                out.messages.append(copy)

    # --- certificates and plumbing ----------------------------------------------------------------

    def _lock_from(self, r: int, d: str, value: Value | None, votes: tuple[Message, ...]) -> Cert | None:
        """The lock certificate those votes make, or None if they are not one."""
        if value is None or digest_of(value) != d or not self._certified(votes, Kind.WEIGHTED_VOTE, r, d, ACCEPT):
            return None
        return Cert(r, self.slot, d, value, votes)

    def _certified(self, votes: tuple[Message, ...], kind: Kind, r: int, d: str, payload: bytes = b"") -> bool:
        """Distinct agents' signed votes of one kind for (slot, round, digest) weighing a quorum."""
        senders = {m.sender for m in votes}
        if len(senders) != len(votes) or not senders <= set(self.peers):
            return False
        for m in votes:
            if (m.kind, m.slot, m.view, m.digest, m.payload) != (kind, self.slot, r, d, payload) or m.proof:
                return False
            if not self._keyring.verify(m):
                return False
        return self.quorum_met(self._weight(senders))

    def _weight(self, agents: Iterable[AgentId]) -> float:
        return math.fsum(self.weights[a] for a in agents)

    def _route(self, msg: Message, out: Output) -> None:
        """Route by slot: help a laggard, keep it for a later slot, or handle it now."""
        if msg.slot < self.slot:
            self._help_laggard(msg, out)
        elif msg.slot > self.slot:
            if msg.slot < self.slots:
                self._future.setdefault(msg.slot, []).append(msg)
        else:
            self._dispatch(msg, out)

    def _dispatch(self, msg: Message, out: Output) -> None:
        """Route a message of the current slot by kind and round."""
        if msg.view > self.round and msg.kind in self._ROUND_BOUND:
            self._later.setdefault(msg.view, []).append(msg)  # its round has not started here
            return
        if msg.view < self.round and msg.kind in self._ROUND_BOUND:
            return
        handler = self._handlers.get(msg.kind)
        if handler is not None:
            handler(self, msg, out)

    # Kinds that only make sense in their own round: kept for later rounds, dropped for past ones.
    _ROUND_BOUND: ClassVar[frozenset[Kind]] = frozenset(
        {Kind.WEIGHTED_PROPOSAL, Kind.WEIGHTED_VOTE, Kind.COMMIT_VOTE}
    )
    _handlers: ClassVar[dict[Kind, Callable[[WeightedCore, Message, Output], None]]] = {
        Kind.WEIGHTED_PROPOSAL: _on_proposal,
        Kind.WEIGHTED_VOTE: _on_vote,
        Kind.LOCK_CERT: _on_lock_cert,
        Kind.COMMIT_VOTE: _on_commit_vote,
        Kind.COMMIT_CERT: _on_commit_cert,
        Kind.ROUND_FAILED: _on_round_failed,
        Kind.NEW_ROUND: _on_new_round,
    }
