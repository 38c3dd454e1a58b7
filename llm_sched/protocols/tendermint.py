"""Tendermint (Buchman, Kwon and Milosevic 2018, arXiv:1807.04938, Algorithm 1) as a sans-IO core.

Each slot is a height. Per round the proposer ``peers[(height + round) % n]`` broadcasts
PROPOSAL(h, r, v, validRound); every process broadcasts PREVOTE and then PRECOMMIT for id(v) or
nil; q = ceil((n+f+1)/2) precommits for id(v) plus the proposal decide v. Normal case:
(n-1) + n(n-1) + n(n-1) = (n-1)(2n+1) messages per height. The rules below are the paper's
``upon`` clauses, named by the line numbers of Algorithm 1; 2f+1 is replaced by q and f+1 stays.
lockedValue/lockedRound and validValue/validRound keep a value that may have been decided from
being contradicted in a later round.

The paper assumes gossip: a message one correct process received reaches all within Δ after GST,
and its liveness argument rests on that. Our network loses messages for good before GST,
and an equivocator's votes reach only some, so the core relays what matters, always as messages
already signed by their authors (still verifiable evidence), never in the normal case (so the
message counts above stay exact):
- a process that makes no progress for ``sync_interval`` sends SYNC(h, r); a peer at the same
  height answers with every message it holds for h, a peer past h with the proposal and the q
  precommits that decided h. A process that sees f+1 peers send for later heights asks at once;
- a message from a height already decided, from a round other than the deciding one (a laggard,
  not a late vote), is answered with that decision's proof;
- leaving a round on timeoutPrecommit, a process sends every peer the q precommits that ended it,
  so a process that missed some does not enter the next round late (when it is that round's
  proposer, the round would be lost);
- a proof of lock goes to whoever may lack it before it proposes: a precommit for a value carries
  its q prevotes after a failed round or when some vote of the round disagrees, and a process
  holding validValue answers a vote for nil or another value (in or after validRound) with it.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, cast

from llm_sched.protocols.core_base import BftCore
from llm_sched.protocols.messages import NIL, AgentId, Kind, Message, Output, Value, digest_of

PROPOSE, PREVOTE, PRECOMMIT = 0, 1, 2
_VOTES = (Kind.PREVOTE, Kind.PRECOMMIT)


@dataclass(frozen=True, slots=True)
class TendermintConfig:
    """Timeouts grow linearly with the round (timeout(r) = base + r * delta), as in the paper."""

    timeout_propose: float = 30.0
    timeout_prevote: float = 10.0
    timeout_precommit: float = 10.0
    timeout_delta: float = 10.0
    sync_interval: float = 60.0
    max_backoff: int = 4
    quorum: int | None = None


@dataclass(frozen=True, slots=True)
class TendermintPersisted:
    """Durable state (Tendermint's WAL): height, round, step, locks, own messages, decisions.

    Votes received from others and pending timeouts are lost; SYNC refills them.
    """

    height: int
    round: int
    step: int
    locked: tuple[int, Value | None]
    valid: tuple[int, Value | None]
    decisions: Mapping[int, Value]
    proofs: Mapping[int, tuple[Message, ...]]
    own: tuple[Message, ...]


class TendermintCore(BftCore[TendermintConfig, TendermintPersisted]):
    """One Tendermint process deciding heights 0 .. slots-1 (``_decided`` holds them by height)."""

    DEFAULT_CONFIG: ClassVar[TendermintConfig] = TendermintConfig()

    def _setup(self) -> None:
        """A process that has not started: height 0, round 0, no lock, no timers."""
        self._byzantine_quorum(self.config.quorum)
        self.height, self.round, self.step_ = 0, 0, PROPOSE
        self.locked_round, self.locked_value = -1, cast(Value | None, None)
        self.valid_round, self.valid_value = -1, cast(Value | None, None)
        self._proofs: dict[int, tuple[Message, ...]] = {}
        self._decided_round: dict[int, int] = {}  # height -> the round that decided it
        self._ahead: set[AgentId] = set()  # senders of messages for later heights (we lag behind)
        self._asked_at = float("-inf")  # when we last asked for catch-up because of them
        self._answered: set[tuple[AgentId, int, int]] = set()  # (laggard, height, round) sent a decision
        self._told: set[tuple[AgentId, int, int]] = set()  # (peer, height, valid round) sent our POL
        self._future: dict[int, list[Message]] = {}
        self._timers: list[tuple[float, int, int, int]] = []  # (deadline, step, height, round)
        self._sync_at: float | None = None
        self._sync_backoff = 0
        self._clear_log()

    # --- public interface -------------------------------------------------------------------

    def proposer(self, height: int, round_: int) -> AgentId:
        """Round-robin proposer by (height + round)."""
        return self.peers[(height + round_) % self.n]

    @property
    def decided_rounds(self) -> dict[int, int]:
        """Per decided height, the round whose precommits decided it."""
        return {h: proof[-1].view for h, proof in self._proofs.items()}

    @property
    def done(self) -> bool:
        """Every height decided (heights are decided in order)."""
        return self.height >= self.slots

    def next_deadline(self) -> float | None:
        """Earliest pending timeout or sync deadline."""
        times = [t for t in (self._timers[0][0] if self._timers else None, self._sync_at) if t is not None]
        return min(times) if times else None

    def rounds_reached(self) -> int:
        return self._decided_round.get(0, self.round if self.height == 0 else 0)

    def persisted(self) -> TendermintPersisted:
        """Snapshot of the durable state (see :class:`TendermintPersisted`)."""
        own = tuple(m for m in self._all_logged() if m.sender == self.node_id)
        return TendermintPersisted(
            self.height, self.round, self.step_,
            (self.locked_round, self.locked_value), (self.valid_round, self.valid_value),
            dict(self._decided), dict(self._proofs), own,
        )

    def _start(self, out: Output) -> None:
        """First tick: start round 0, or pick up where the persisted state left off; then, as on
        any tick, run what is due."""
        if not self.done:
            if self.step_ == PROPOSE:
                self._start_round(self.round, out)
            else:
                self._touch()
        self._on_tick(out)

    def _on_tick(self, out: Output) -> None:
        """Run every due timeout and the sync timer, then the rules they may have enabled."""
        now = self._now
        while self._timers and self._timers[0][0] <= now:
            _, step, h, r = heapq.heappop(self._timers)
            self._on_timeout(step, h, r, out)
        if self._sync_at is not None and now >= self._sync_at and not self.done:
            self._sync_backoff += 1
            self._send_all(Kind.SYNC, self.round, self.height, NIL, out)
            self._arm_sync()
        self._run_rules(out)

    def _receive(self, msg: Message, out: Output) -> None:
        """Answer what the message shows a peer lacks, log what it carries, then run the rules."""
        if msg.kind is Kind.SYNC:
            self._on_sync(msg, out)
        elif msg.kind is Kind.SYNC_REPLY:
            for m in msg.proof:
                if self._keyring.verify(m, deep=True):
                    self._accept(m)
        else:
            self._answer_laggard(msg, out)
            self._accept(msg)
            self._answer_dissent(msg, out)
        self._catch_up(out)
        self._run_rules(out)

    # --- message log ----------------------------------------------------------------------------

    def _clear_log(self) -> None:
        self._proposals: dict[int, dict[str, Message]] = {}  # round -> digest -> proposal
        self._votes: dict[tuple[Kind, int], dict[AgentId, Message]] = {}  # first vote per sender
        self._tally: dict[tuple[Kind, int, str], dict[AgentId, Message]] = {}  # voters per digest
        self._senders: dict[int, set[AgentId]] = {}
        self._fired: set[tuple[str, int]] = set()

    def _accept(self, msg: Message) -> None:
        """Log a proposal or vote for the current height; keep later heights for later."""
        if msg.kind not in (Kind.PROPOSAL, Kind.PREVOTE, Kind.PRECOMMIT) or msg.view < 0:
            return
        for m in msg.proof:  # proof of lock: a proposal and prevotes of the same height
            if m.kind in (Kind.PROPOSAL, Kind.PREVOTE) and m.slot == msg.slot and self._keyring.verify(m, deep=True):
                self._accept(m)
        if msg.slot == self.height and not self.done:
            self._record(msg)
        elif self.height < msg.slot < self.slots:
            self._future.setdefault(msg.slot, []).append(msg)
            self._ahead.add(msg.sender)

    def _record(self, msg: Message) -> None:
        r = msg.view
        if msg.kind is Kind.PROPOSAL:
            if msg.sender != self.proposer(self.height, r):
                return  # only the round's proposer may propose
            if msg.value is None or digest_of(msg.value) != msg.digest:
                return
            # An equivocating proposer's second proposal is kept too: the prevote rules act on
            # the first one only (the step guard), but a relayed commit proof may rest on another.
            self._proposals.setdefault(r, {}).setdefault(msg.digest, msg)
        else:
            # A Byzantine sender may vote for two digests in one round. Counting it once per
            # digest is still safe (two quorums for different digests share an honest voter,
            # who votes once), and it is needed: a commit proof relayed by a peer may hold the
            # equivocator's other vote, and it must still add up to q.
            voters = self._tally.setdefault((msg.kind, r, msg.digest), {})
            if msg.sender in voters:
                return
            voters[msg.sender] = msg
            self._votes.setdefault((msg.kind, r), {}).setdefault(msg.sender, msg)
        self._senders.setdefault(r, set()).add(msg.sender)

    def _all_logged(self) -> list[Message]:
        proposals = [m for ps in self._proposals.values() for m in ps.values()]
        return proposals + [m for vs in self._tally.values() for m in vs.values()]

    def _count(self, kind: Kind, r: int, digest: str | None = None) -> int:
        """Distinct senders of ``kind`` votes in round r, for one digest or for any."""
        if digest is None:
            return len(self._votes.get((kind, r), {}))
        return len(self._tally.get((kind, r, digest), {}))

    # --- Algorithm 1 ----------------------------------------------------------------------------

    def _start_round(self, r: int, out: Output) -> None:
        """StartRound (lines 11-21)."""
        self.round, self.step_ = r, PROPOSE
        self._touch()
        if self.proposer(self.height, r) == self.node_id:
            if not self._proposals.get(r):  # after a restart the proposal may already be out
                value = self.valid_value if self.valid_value is not None else self._propose_fn(self.height)
                d, payload = digest_of(value), str(self.valid_round).encode()
                pol = self._pol(self.valid_round, d) if self.valid_value is not None else ()
                own = self._broadcast(Kind.PROPOSAL, r, self.height, d, out, value, payload, pol)
                self._record(own)
        else:
            self._schedule(PROPOSE, self.config.timeout_propose)

    def _pol(self, vr: int, d: str) -> tuple[Message, ...]:
        """The proof of lock for a re-proposal: q prevotes of round vr for it.

        Attached to the proposal (a no-op in the normal case, where validRound is -1) so that a
        process that lost those prevotes before GST can still accept the proposal (line 28)
        instead of waiting for timeoutPropose; the paper gets the same from gossip.
        """
        voters = self._tally.get((Kind.PREVOTE, vr, d), {})
        return tuple(voters[s] for s in sorted(voters))[: self.q]

    def _lock_evidence(self) -> tuple[Message, ...]:
        """The proposal we are locked on and the q prevotes that locked us.

        Sent only with a nil prevote that our lock forced, i.e. never in the normal case. A
        proposer that missed those prevotes before GST learns the newer valid value from it
        (see :meth:`_valid_rule`) and re-proposes it, instead of proposing a value the locked
        processes must refuse round after round.
        """
        d = digest_of(self.locked_value)
        proposal = self._proposals.get(self.locked_round, {}).get(d)
        return () if proposal is None else (proposal, *self._pol(self.locked_round, d))

    def _run_rules(self, out: Output) -> None:
        """Fire ``upon`` rules until none applies (each firing changes state, so this ends)."""
        rules = (
            self._decide_rule, self._skip_rule, self._proposal_rule, self._prevote_timeout_rule,
            self._lock_rule, self._nil_precommit_rule, self._precommit_timeout_rule, self._valid_rule,
        )
        while not self.done and any(rule(out) for rule in rules):
            pass

    def _proposal_rule(self, out: Output) -> bool:
        """Lines 22-33: prevote for a fresh proposal, or for a re-proposal backed by a POL."""
        if self.step_ != PROPOSE:
            return False
        return any(self._prevote_for(p, out) for p in self._proposals.get(self.round, {}).values())

    def _prevote_for(self, p: Message, out: Output) -> bool:
        if p.value is None or self.step_ != PROPOSE:
            return False
        try:
            vr = int(p.payload or b"-1")
        except ValueError:
            return False
        valid = self._valid(p.value)
        if vr == -1:
            free = self.locked_round == -1 or self.locked_value == p.value
        elif 0 <= vr < self.round and self._count(Kind.PREVOTE, vr, p.digest) >= self.q:
            free = self.locked_round <= vr or self.locked_value == p.value
        else:
            return False  # wait for the proof-of-lock prevotes, or for timeoutPropose
        if valid and free:
            self._vote(Kind.PREVOTE, p.digest, out)
        else:  # a nil vote forced by our lock carries the lock's evidence (see _lock_evidence)
            self._vote(Kind.PREVOTE, NIL, out, () if not valid else self._lock_evidence())
        self.step_ = PREVOTE
        self._touch()
        return True

    def _prevote_timeout_rule(self, out: Output) -> bool:
        """Lines 34-35: q prevotes of any kind start timeoutPrevote, once per round."""
        if self.step_ != PREVOTE or self._count(Kind.PREVOTE, self.round) < self.q:
            return False
        return self._once("prevote-timeout", lambda: self._schedule(PREVOTE, self.config.timeout_prevote))

    def _lock_rule(self, out: Output) -> bool:
        """Lines 36-43: q prevotes for the proposal lock it (if still prevoting) and make it valid."""
        if self.step_ < PREVOTE or ("lock", self.round) in self._fired:
            return False
        backed = [
            p for p in self._proposals.get(self.round, {}).values()
            if p.value is not None and self._count(Kind.PREVOTE, self.round, p.digest) >= self.q
        ]
        if not backed or backed[0].value is None or not self._valid(backed[0].value):
            return False
        p = backed[0]  # two digests cannot both gather q prevotes while quorums intersect
        self._fired.add(("lock", self.round))
        if self.step_ == PREVOTE:
            self.locked_value, self.locked_round = p.value, self.round
            # After a failed round, or when some vote of this round names something else, the
            # precommit carries its proof of lock: a process that missed a prevote (lost, or an
            # equivocator's sent elsewhere) may be the next proposer and must re-propose this
            # value (the paper's gossip would have delivered those prevotes to it).
            disputed = self.round > 0 or self._disputed(p.digest)
            self._vote(Kind.PRECOMMIT, p.digest, out, (p, *self._pol(self.round, p.digest)) if disputed else ())
            self.step_ = PRECOMMIT
            self._touch()
        self.valid_value, self.valid_round = p.value, self.round
        return True

    def _nil_precommit_rule(self, out: Output) -> bool:
        """Lines 44-46: q nil prevotes: precommit nil."""
        if self.step_ != PREVOTE or self._count(Kind.PREVOTE, self.round, NIL) < self.q:
            return False
        self._vote(Kind.PRECOMMIT, NIL, out)
        self.step_ = PRECOMMIT
        self._touch()
        return True

    def _precommit_timeout_rule(self, out: Output) -> bool:
        """Lines 47-48: q precommits of any kind start timeoutPrecommit, once per round."""
        if self._count(Kind.PRECOMMIT, self.round) < self.q:
            return False
        return self._once("precommit-timeout", lambda: self._schedule(PRECOMMIT, self.config.timeout_precommit))

    def _decide_rule(self, out: Output) -> bool:
        """Lines 49-54: a proposal of any round plus q precommits for it decide the height."""
        for r, p in [(rnd, p) for rnd in sorted(self._proposals) for p in self._proposals[rnd].values()]:
            if p.value is None or self._count(Kind.PRECOMMIT, r, p.digest) < self.q:
                continue
            if not self._valid(p.value):
                continue
            voters = self._tally[(Kind.PRECOMMIT, r, p.digest)]
            backing = [voters[s] for s in sorted(voters)][: self.q]
            self._decide(p.value, r, (p, *backing), out)
            return True
        return False

    def _valid_rule(self, out: Output) -> bool:
        """validValue from the newest proof of lock seen in *any* round up to the current one.

        The paper updates validValue only from the current round (line 42); accepting an older
        round's q prevotes as well changes nothing for safety, which rests on locks alone (a
        proposer may propose anything), and lets evidence that arrives late still count.
        """
        for r in sorted(self._proposals, reverse=True):
            if r <= self.valid_round or r > self.round:
                continue
            for p in self._proposals[r].values():
                if p.value is not None and self._count(Kind.PREVOTE, r, p.digest) >= self.q and self._valid(p.value):
                    self.valid_value, self.valid_round = p.value, r
                    return True
        return False

    def _skip_rule(self, out: Output) -> bool:
        """Lines 55-56: f+1 processes in a later round include an honest one: jump there."""
        later = [r for r, who in self._senders.items() if r > self.round and len(who) >= self.f + 1]
        if not later:
            return False
        self._start_round(max(later), out)
        return True

    def _on_timeout(self, step: int, h: int, r: int, out: Output) -> None:
        """Lines 57-66."""
        if h != self.height or r != self.round or self.done:
            return
        if step == PROPOSE and self.step_ == PROPOSE:
            self._vote(Kind.PREVOTE, NIL, out)
            self.step_ = PREVOTE
            self._touch()
        elif step == PREVOTE and self.step_ == PREVOTE:
            self._vote(Kind.PRECOMMIT, NIL, out)
            self.step_ = PRECOMMIT
            self._touch()
        elif step == PRECOMMIT:
            self._relay_round_end(r, out)
            self._start_round(r + 1, out)

    def _decide(self, value: Value, r: int, proof: tuple[Message, ...], out: Output) -> None:
        h = self.height
        self._decided[h], self._proofs[h] = value, proof
        self._decided_round[h] = r
        self._ahead = set()
        out.decisions.append((h, value))
        self.height += 1
        self.locked_round, self.locked_value = -1, None
        self.valid_round, self.valid_value = -1, None
        self._clear_log()
        self._timers = []
        if self.done:
            self._sync_at = None
            return
        for m in self._future.pop(self.height, []):
            self._accept(m)
        self._start_round(0, out)

    # --- catch-up -------------------------------------------------------------------------------

    def _disputed(self, d: str) -> bool:
        """Some vote of the current round names something other than ``d``."""
        return any(r == self.round and digest != d for _, r, digest in self._tally)

    def _valid_evidence(self) -> tuple[Message, ...]:
        """validValue's proposal and the q prevotes that made it valid (empty if we lack them)."""
        if self.valid_value is None:
            return ()
        d = digest_of(self.valid_value)
        proposal = self._proposals.get(self.valid_round, {}).get(d)
        return () if proposal is None else (proposal, *self._pol(self.valid_round, d))

    def _answer_dissent(self, msg: Message, out: Output) -> None:
        """A vote for nil or another value, in or after our validRound: its sender may lack the
        proof of lock we hold (lost before the heal, or an equivocator's prevote sent only to some).
        Send it ours, once per peer and validRound, before it proposes something the locked refuse."""
        if msg.kind not in _VOTES or msg.slot != self.height or self.valid_value is None:
            return
        if msg.view < self.valid_round or msg.digest == digest_of(self.valid_value):
            return
        key = (msg.sender, self.height, self.valid_round)
        evidence = self._valid_evidence()
        if key in self._told or not evidence:
            return
        self._told.add(key)
        reply = self._signer.make(msg.sender, Kind.SYNC_REPLY, self.round, self.height, NIL, proof=evidence)
        out.messages.append(reply)

    def _relay_round_end(self, r: int, out: Output) -> None:
        """Leaving round r on timeoutPrecommit: send every peer the q precommits that ended it. A
        process still in r because it missed some of them (lost before the heal, or withheld by a
        Byzantine voter) would otherwise enter r+1 only on f+1 messages of r+1, and when it is the
        proposer of r+1 nobody sends one before timeoutPropose: the round would be lost."""
        voters = self._votes.get((Kind.PRECOMMIT, r), {})
        bundle = tuple(voters[s] for s in sorted(voters))[: self.q]
        self._send_all(Kind.SYNC_REPLY, r + 1, self.height, NIL, out, proof=bundle)

    def _answer_laggard(self, msg: Message, out: Output) -> None:
        """A message for a height we decided, from a round other than the deciding one (so not a
        late vote of the normal case): its sender is stuck there. Send it the decision's proof,
        once per (sender, height, round)."""
        h = msg.slot
        proof = self._proofs.get(h)
        if h >= self.height or proof is None or msg.view == proof[-1].view:
            return
        key = (msg.sender, h, msg.view)
        if key in self._answered:
            return
        self._answered.add(key)
        out.messages.append(self._signer.make(msg.sender, Kind.SYNC_REPLY, msg.view, h, NIL, proof=proof))

    def _catch_up(self, out: Output) -> None:
        """f+1 peers already send for later heights (one of them honest): we lag. Ask for the
        decisions at once instead of waiting for the sync timer, at most once per timeoutPrevote."""
        if self.done or len(self._ahead) < self.f + 1 or self._now < self._asked_at + self.config.timeout_prevote:
            return
        self._asked_at = self._now
        self._send_all(Kind.SYNC, self.round, self.height, NIL, out)

    def _on_sync(self, msg: Message, out: Output) -> None:
        """Answer a stuck peer with what it needs (see the module docstring)."""
        h = msg.slot
        if h < self.height and h in self._proofs:
            bundle = self._proofs[h]
        elif h == self.height and not self.done:
            bundle = tuple(self._all_logged())
        else:
            return
        if bundle:
            out.messages.append(self._signer.make(msg.sender, Kind.SYNC_REPLY, msg.view, h, NIL, proof=bundle))

    # --- plumbing -------------------------------------------------------------------------------

    def _valid(self, value: Value) -> bool:
        return self._validate(self.height, value)

    def _vote(self, kind: Kind, digest: str, out: Output, proof: tuple[Message, ...] = ()) -> None:
        own = self._broadcast(kind, self.round, self.height, digest, out, proof=proof)
        self._record(own)

    def _once(self, name: str, action: object) -> bool:
        if (name, self.round) in self._fired:
            return False
        self._fired.add((name, self.round))
        assert callable(action)
        action()
        return True

    def _schedule(self, step: int, base: float) -> None:
        deadline = self._now + base + self.round * self.config.timeout_delta
        heapq.heappush(self._timers, (deadline, step, self.height, self.round))

    def _touch(self) -> None:
        """Progress was made: restart the sync timer from its base interval."""
        self._sync_backoff = 0
        self._arm_sync()

    def _arm_sync(self) -> None:
        backoff = min(self._sync_backoff, self.config.max_backoff)
        self._sync_at = None if self.done else self._now + self.config.sync_interval * 2**backoff

    def _restore(self, saved: TendermintPersisted) -> None:
        self.height, self.round, self.step_ = saved.height, saved.round, saved.step
        self.locked_round, self.locked_value = saved.locked
        self.valid_round, self.valid_value = saved.valid
        self._decided = dict(saved.decisions)
        self._proofs = dict(saved.proofs)
        for m in saved.own:
            self._record(m)
