"""Multi-Paxos (Lamport, "Paxos Made Simple", 2001) as a sans-IO core, crash-fault model.

Every agent is proposer, acceptor and learner. Ballots are ``round * n + index`` so no two agents
share one. Leader change (phase 1, once for all open slots): a candidate sends PREPARE(b) to the
n-1 others; each acceptor that promised nothing higher answers PROMISE(b) with every value it has
accepted (the ACCEPT messages themselves); with a majority the candidate leads and re-proposes,
per slot, the value accepted under the highest ballot: (n-1) + (n-1) messages. Steady state
(phase 2): ACCEPT(b, slot, value) to the n-1 others, ACCEPTED back to the leader: 2(n-1) messages
per decision; a majority of acceptances (the leader's own included) decides.

Choices, each for a reason:
- Followers learn decisions from the leader's LEARN message, sent when the leader is idle (it
  doubles as the heartbeat) and carrying the leader's ACCEPTs of the slots a follower still lacks;
  acknowledgements let the leader go quiet once everyone knows everything. Learning is therefore
  not part of the 2(n-1) (as in the reference count).
- Followers suspect the leader after a randomized timeout (a seeded ``random.Random`` is handed
  in) and run phase 1 with a higher ballot; acceptors answer lower ballots with REJECT so a stale
  leader steps down.
- Persisted (``PaxosPersisted``): the promised ballot, accepted values and decisions, what an
  acceptor must never forget; leader state and timers are volatile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llm_sched.protocols.core_base import CANDIDATE, FOLLOWER, LEADER, StableLeaderConfig, StableLeaderCore
from llm_sched.protocols.messages import BROADCAST, NIL, AgentId, Kind, Message, Output, Value, digest_of
from llm_sched.protocols.quorum import majority

# ``window`` bounds the undecided proposals in flight; ``election_timeout`` is when a follower
# suspects the leader and runs phase 1.
PaxosConfig = StableLeaderConfig


@dataclass(frozen=True, slots=True)
class PaxosPersisted:
    """An acceptor's durable state: promised ballot, accepted values; plus the decided slots."""

    promised: int
    accepted: Mapping[int, Message]  # slot -> the ACCEPT message (ballot, value) accepted last
    decided: Mapping[int, Value]


def _slots_payload(slots: Sequence[int]) -> bytes:
    return ",".join(map(str, sorted(slots))).encode()


def _parse_slots(payload: bytes) -> set[int]:
    try:
        return {int(x) for x in payload.decode().split(",") if x}
    except ValueError:
        return set()


class MultiPaxosCore(StableLeaderCore[PaxosPersisted]):
    """One Multi-Paxos agent deciding slots 0 .. slots-1."""

    def _setup(self) -> None:
        """An agent that has not started: a follower that promised nothing and accepted nothing."""
        self.majority = self.config.quorum or majority(self.n)
        self.promised = -1
        self._accepted: dict[int, Message] = {}
        self.ballot = -1
        self.leader: AgentId | None = None  # whose ballot ``promised`` is, once its phase 2 reached us
        self._promises: dict[AgentId, Message] = {}
        self._proposals: dict[int, Message] = {}  # slot -> my ACCEPT (ballot self.ballot)
        self._acks: dict[int, set[AgentId]] = {}  # slot -> acceptors of my proposal
        self._known: dict[AgentId, set[int]] = {}  # follower -> slots it has told me it decided

    def _restore(self, saved: PaxosPersisted) -> None:
        self.promised = saved.promised
        self._accepted = dict(saved.accepted)
        self._decided = dict(saved.decided)

    # --- public interface -------------------------------------------------------------------

    def persisted(self) -> PaxosPersisted:
        """Snapshot of the durable state (see :class:`PaxosPersisted`)."""
        return PaxosPersisted(self.promised, dict(self._accepted), dict(self._decided))

    def leadership(self) -> tuple[int, AgentId] | None:
        """(ballot, leader) as this agent knows them, or None while it knows no leader."""
        return None if self.leader is None else (self.promised, self.leader)

    # --- phase 1 --------------------------------------------------------------------------------

    def _stand_for_leader(self, out: Output) -> None:
        rnd = max(self.promised, self.ballot) // self.n + 1
        self.ballot = rnd * self.n + self.peers.index(self.node_id)
        self.role, self.promised, self.leader = CANDIDATE, self.ballot, None
        self._promises = {self.node_id: self._promise_message(self.node_id)}
        self._send_all(Kind.PAXOS_PREPARE, self.ballot, 0, NIL, out)
        self._arm()
        self._maybe_lead(out)

    def _promise_message(self, to: AgentId) -> Message:
        proof = tuple(self._accepted[s] for s in sorted(self._accepted))
        return self._signer.make(to, Kind.PROMISE, self.promised, 0, NIL, proof=proof)

    def _on_prepare(self, msg: Message, out: Output) -> None:
        if msg.view <= self.promised and not (msg.view == self.promised and self.role == FOLLOWER):
            out.messages.append(self._signer.make(msg.sender, Kind.REJECT, self.promised, 0, NIL))
            return
        if msg.view != self.promised:
            self.leader = None
        self.promised, self.role = msg.view, FOLLOWER
        out.messages.append(self._promise_message(msg.sender))
        self._arm()

    def _on_promise(self, msg: Message, out: Output) -> None:
        if self.role == CANDIDATE and msg.view == self.ballot:
            self._promises[msg.sender] = msg
            self._maybe_lead(out)

    def _maybe_lead(self, out: Output) -> None:
        if self.role != CANDIDATE or len(self._promises) < self.majority:
            return
        self.role, self.leader = LEADER, self.node_id
        self._proposals, self._acks = {}, {}
        self._known = {p: set() for p in self.others}
        best: dict[int, Message] = {}  # per slot, the value accepted under the highest ballot
        for promise in self._promises.values():
            for acc in promise.proof:
                if acc.slot not in best or acc.view > best[acc.slot].view:
                    best[acc.slot] = acc
        for s in sorted(best):
            if s not in self._decided:  # decided slots reach followers through LEARN instead
                self._propose_slot(s, best[s].value, out)
        self._fill(out)
        self._arm()

    def _on_reject(self, msg: Message, out: Output) -> None:
        if msg.view > self.promised:
            self.promised, self.leader = msg.view, None
        if self.role != FOLLOWER and msg.view > self.ballot:
            self.role, self.leader = FOLLOWER, None  # someone runs a higher ballot: stop leading
            self._arm()

    # --- phase 2 --------------------------------------------------------------------------------

    def _fill(self, out: Output) -> None:
        """Open fresh slots, keeping at most ``window`` undecided proposals in flight."""
        for s in range(self.slots):
            open_ = sum(1 for t in self._proposals if t not in self._decided)
            if open_ >= self.config.window:
                break
            if s not in self._proposals and s not in self._decided:
                self._propose_slot(s, self._propose_fn(s), out)

    def _propose_slot(self, s: int, value: Value | None, out: Output) -> None:
        mine = self._broadcast(Kind.ACCEPT, self.ballot, s, digest_of(value), out, value)
        self._proposals[s], self._acks[s] = mine, {self.node_id}
        self._accepted[s] = mine  # the leader is an acceptor too (its promise covers the ballot)
        self._arm()  # traffic: the next heartbeat can wait
        self._maybe_decide(s, out)

    def _adopt_ballot(self, msg: Message, out: Output) -> bool:
        """Reject a message from an older ballot; otherwise promise its ballot (stepping down if outbid)."""
        if msg.view < self.promised:
            out.messages.append(self._signer.make(msg.sender, Kind.REJECT, self.promised, 0, NIL))
            return False
        self.promised = msg.view
        if self.role != FOLLOWER and msg.view > self.ballot:
            self.role = FOLLOWER
        if self.role == FOLLOWER:
            self.leader = msg.sender  # phase 2 (or its heartbeat) under this ballot: its leader
        return True

    def _on_accept(self, msg: Message, out: Output) -> None:
        if not self._adopt_ballot(msg, out):
            return
        self._accepted[msg.slot] = msg
        out.messages.append(self._signer.make(msg.sender, Kind.ACCEPTED, msg.view, msg.slot, msg.digest))
        self._arm()

    def _on_accepted(self, msg: Message, out: Output) -> None:
        mine = self._proposals.get(msg.slot)
        if self.role == LEADER and msg.view == self.ballot and mine is not None and mine.digest == msg.digest:
            self._acks[msg.slot].add(msg.sender)
            self._maybe_decide(msg.slot, out)

    def _maybe_decide(self, s: int, out: Output) -> None:
        if len(self._acks[s]) >= self.majority and s not in self._decided:
            value = self._proposals[s].value
            assert value is not None
            self._learn(s, value, out)
            self._fill(out)

    def _learn(self, s: int, value: Value, out: Output) -> None:
        if s not in self._decided:
            self._decided[s] = value
            out.decisions.append((s, value))

    # --- learning and liveness ------------------------------------------------------------------

    def _heartbeat(self, out: Output) -> None:
        """Idle leader: re-send unanswered ACCEPTs, tell followers what was decided."""
        for p in self.others:
            for s, mine in sorted(self._proposals.items()):
                if s not in self._decided and p not in self._acks[s]:
                    out.messages.append(self._signer.make(p, Kind.ACCEPT, mine.view, s, mine.digest, mine.value))
            missing = [s for s in sorted(self._decided) if s not in self._known[p]]
            if missing or not self._finished():
                proof = tuple(self._decision_message(s) for s in missing)
                out.messages.append(self._signer.make(p, Kind.LEARN, self.ballot, 0, NIL, proof=proof))
        self._arm()

    def _decision_message(self, s: int) -> Message:
        value = self._decided[s]
        return self._signer.make(BROADCAST, Kind.ACCEPT, self.ballot, s, digest_of(value), value)

    def _on_learn(self, msg: Message, out: Output) -> None:
        if not self._adopt_ballot(msg, out):
            return
        for acc in msg.proof:
            if acc.kind is Kind.ACCEPT and acc.value is not None:
                self._learn(acc.slot, acc.value, out)
        ack = _slots_payload(list(self._decided))
        out.messages.append(self._signer.make(msg.sender, Kind.LEARN_ACK, msg.view, 0, NIL, payload=ack))
        self._arm()

    def _on_learn_ack(self, msg: Message, out: Output) -> None:
        if self.role == LEADER and msg.view == self.ballot:
            self._known[msg.sender] |= _parse_slots(msg.payload)
            self._arm()

    def _finished(self) -> bool:
        """Leader: every slot decided and every follower knows all of them."""
        everything = set(range(self.slots))
        return self.done and all(self._known[p] >= everything for p in self.others)

    _handlers = {
        Kind.PAXOS_PREPARE: _on_prepare,
        Kind.PROMISE: _on_promise,
        Kind.REJECT: _on_reject,
        Kind.ACCEPT: _on_accept,
        Kind.ACCEPTED: _on_accepted,
        Kind.LEARN: _on_learn,
        Kind.LEARN_ACK: _on_learn_ack,
    }
