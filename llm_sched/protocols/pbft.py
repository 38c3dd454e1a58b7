"""PBFT (Castro and Liskov, OSDI 1999) as a sans-IO state machine deciding a fixed run of slots.

Normal case per slot: the primary of view v sends PRE-PREPARE(v, s, d, value) to the n-1 backups;
each backup that finds the value valid sends PREPARE to the n-1 others; a replica holding the
pre-prepare and q-1 matching prepares is *prepared* and sends COMMIT to the n-1 others; q matching
commits decide. That is (n-1) + (n-1)^2 + n(n-1) = 2n(n-1) messages. q is the Byzantine quorum
ceil((n+f+1)/2), not 2f+1: any two quorums share an honest replica, which is all the proofs need.

View change: when its progress timer expires a replica moves to view v+1 and sends VIEW-CHANGE
carrying its certificates (a *commit* certificate for each decided slot, its highest *prepared*
certificate for every other slot). The new primary, holding q view-changes, sends NEW-VIEW with
those view-changes and a PRE-PREPARE for every slot that has a prepared certificate but no commit
certificate, choosing the highest view's value. Every replica recomputes that choice before
accepting. Cost (n-1)^2 + (n-1) = n(n-1) when the n-1 live replicas change view together.
Timeouts double with every view change (capped), as in the paper, whether the replica's own timer
started it or it joined f+1 others. After a decision its own commit quorum reached in the current
view, the timeout becomes twice what that decision took (never less than the base): falling back
to the base after every decision would make a network slower than the base timeout (a slow agent
that every quorum needs) pay fruitless views again for every slot. A decision merely learned (a
commit certificate from a new view or a peer) says nothing about the current view and leaves the
timeout alone.

Deviations from the paper, each for a reason:
- Slots are application slots (one job decision each), all wanted from the start; there are no
  client requests, checkpoints or watermarks. The primary keeps at most ``window`` undecided slots
  open. Commit certificates in view-changes play the role of stable checkpoints: decided slots
  are not re-run in the new view.
- A replica that receives a view-change from a peer lacking slots it has decided answers with
  DECIDED, the commit certificates of those slots (a minimal state transfer), so an agent that lost
  messages to a partition or a crash catches up without the others changing view.
- Messages for views not yet entered are kept and used once the view starts (the network reorders).
- A replica waiting for a new view re-sends its view-change every ``base_timeout`` until q
  replicas asked for that view or a later one; only then does its new-view timer run (as in the
  paper), so a replica whose messages were lost cannot race ahead through views on its own. A
  replica that already holds q answers such a re-sent view-change with its own (at most once per
  ``base_timeout`` per peer): it stopped re-sending, and the re-sender, perhaps the new primary,
  may never have received it (lost before the network healed).

Optional fast path (``fast_path=True``): a replica that holds the pre-prepare and prepares from all
n-1 backups decides at once, two message delays after the proposal, and still sends its commit so
that slower replicas finish with the normal three phases. It is safe because a fast decision
implies that every honest replica sent that prepare, and every honest replica reports its own
prepare in a view-change; the new primary treats a digest with q-f reported prepares in a view as
if it were prepared there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from llm_sched.protocols.core_base import BftCore
from llm_sched.protocols.messages import BROADCAST, NIL, AgentId, Cert, Kind, Message, Output, digest_of


@dataclass(frozen=True, slots=True)
class PbftConfig:
    """Tunables; ``quorum`` overrides q only to show that a too-small quorum breaks safety."""

    base_timeout: float = 20.0
    max_backoff: int = 5
    window: int = 4
    fast_path: bool = False
    quorum: int | None = None


@dataclass(frozen=True, slots=True)
class PbftPersisted:
    """What a replica writes to stable storage before sending, and all it has after a restart.

    The view, whether it was mid view change, its decided slots (with commit certificates), its
    highest prepared certificates and its own signed votes. Votes received from others, view-change
    messages collected and timers are lost; the replica recovers through the view-change path.
    """

    view: int
    active: bool
    decided: Mapping[int, Cert]
    prepared: Mapping[int, Cert]
    own: tuple[Message, ...]
    voted: tuple[Message, ...] = ()  # pre-prepares it voted for (reported on the fast path)


@dataclass(slots=True)
class _Parsed:
    """Certificates extracted from a proof, plus the own prepares reported there (fast path)."""

    committed: dict[int, Cert]
    prepared: dict[int, Cert]
    # Fast path only: (view, slot, digest) -> the pre-prepare the reporter itself voted for.
    own_votes: dict[tuple[int, int, str], Message]


_VoteKey = tuple[Kind, int, int, str]


class PbftCore(BftCore[PbftConfig, PbftPersisted]):
    """One PBFT replica. Feed it verified messages with ``step`` and the time with ``tick``."""

    DEFAULT_CONFIG: ClassVar[PbftConfig] = PbftConfig()

    def _setup(self) -> None:
        """A replica that has not started: view 0, nothing logged, no timer."""
        self._byzantine_quorum(self.config.quorum)
        self.view = 0
        self.active = True  # False while waiting for NEW-VIEW of self.view
        self._pp: dict[tuple[int, int], Message] = {}
        self._votes: dict[_VoteKey, dict[AgentId, Message]] = {}
        self._own: dict[tuple[Kind, int, int], Message] = {}
        self._voted_pp: dict[tuple[int, int], Message] = {}  # pre-prepares this replica voted for
        self._prepared: dict[int, Cert] = {}
        self._certs: dict[int, Cert] = {}  # commit certificates of the decided slots (values: _decided)
        self._vcs: dict[int, dict[AgentId, Message]] = {}
        self._parsed: dict[bytes, _Parsed | None] = {}
        self._backoff = 0
        self._armed_at = 0.0
        self._answered_vc: dict[AgentId, float] = {}  # when we last answered a peer's re-sent view-change

    # --- public interface -------------------------------------------------------------------

    def primary(self, view: int) -> AgentId:
        """Round-robin primary of a view."""
        return self.peers[view % self.n]

    @property
    def decided_views(self) -> dict[int, int]:
        """Per decided slot, the view of the certificate that decided it (here or, learned, elsewhere)."""
        return {s: c.view for s, c in self._certs.items()}

    def rounds_reached(self) -> int:
        return self.view

    def persisted(self) -> PbftPersisted:
        """Snapshot of the durable state (see :class:`PbftPersisted`)."""
        voted = tuple(self._voted_pp.values())
        own = tuple(self._own.values())
        return PbftPersisted(self.view, self.active, dict(self._certs), dict(self._prepared), own, voted)

    def _start(self, out: Output) -> None:
        """The first tick: the progress timer runs, and the primary opens its first slots."""
        self._arm()
        self._propose_slots(out)

    def _on_tick(self, out: Output) -> None:
        """The progress timer expired: start a view change (or re-send ours while too few joined)."""
        deadline = self._deadline  # checked inline, not by _timer_due: a tick precedes every delivery
        if deadline is None or self._now < deadline:
            return
        if self._waiting_for_quorum():
            self._resend_view_change(out)
        else:
            self._backoff += 1
            self._start_view_change(self.view + 1, out)

    # --- normal case ----------------------------------------------------------------------------

    def _on_pre_prepare(self, msg: Message, out: Output) -> None:
        v, s = msg.view, msg.slot
        if v < self.view or not 0 <= s < self.slots or msg.sender != self.primary(v):
            return
        if (v, s) in self._pp or not self._valid_proposal(msg):
            return  # first pre-prepare wins: a second one is the primary equivocating
        self._pp[(v, s)] = msg
        if v == self.view and self.active:
            self._progress(v, s, out)

    def _on_vote(self, msg: Message, out: Output) -> None:
        v, s = msg.view, msg.slot
        if v < self.view or not 0 <= s < self.slots:
            return
        if msg.kind is Kind.PREPARE and msg.sender == self.primary(v):
            return  # the primary's pre-prepare is its prepare; a separate one is not counted
        self._votes.setdefault((msg.kind, v, s, msg.digest), {}).setdefault(msg.sender, msg)
        if v == self.view and self.active:
            self._progress(v, s, out)

    def _valid_proposal(self, msg: Message) -> bool:
        value = msg.value
        return value is not None and digest_of(value) == msg.digest and self._validate(msg.slot, value)

    def _progress(self, v: int, s: int, out: Output) -> None:
        """Apply the three-phase rules to slot s of the current view."""
        pp = self._pp.get((v, s))
        if pp is None or pp.value is None:
            return
        d, done = pp.digest, self._certs.get(s)
        if done is not None and done.digest != d:
            return  # never vote against a decided value (cannot happen while quorums intersect)
        if self.node_id != self.primary(v) and (Kind.PREPARE, v, s) not in self._own:
            self._voted_pp[(v, s)] = pp
            self._vote(Kind.PREPARE, v, s, d, out)
        prepares = self._votes.get((Kind.PREPARE, v, s, d), {})
        if len(prepares) < self.q - 1:
            return
        held = self._prepared.get(s)
        if held is None or held.view < v:
            self._prepared[s] = Cert(v, s, d, pp.value, (pp, *self._first(prepares, self.q - 1)))
        if (Kind.COMMIT, v, s) not in self._own:
            self._vote(Kind.COMMIT, v, s, d, out)
        commits = self._votes.get((Kind.COMMIT, v, s, d), {})
        if done is None and len(commits) >= self.q:
            self._decide(Cert(v, s, d, pp.value, (pp, *self._first(commits, self.q))), out, own=True)
        elif done is None and self.config.fast_path and len(prepares) == self.n - 1:
            self._decide(Cert(v, s, d, pp.value, (pp, *self._first(prepares, self.n - 1))), out, own=True)

    def _vote(self, kind: Kind, v: int, s: int, d: str, out: Output) -> None:
        own = self._broadcast(kind, v, s, d, out)
        self._own[(kind, v, s)] = own
        self._votes.setdefault((kind, v, s, d), {})[self.node_id] = own

    def _decide(self, cert: Cert, out: Output, own: bool = False) -> None:
        """Record a decision: ``own`` when this replica's commit quorum in its current view made it,
        otherwise a certificate learned from a new view or a peer (catch-up)."""
        if cert.slot in self._decided:
            return
        self._certs[cert.slot] = cert
        self._decided[cert.slot] = cert.value
        out.decisions.append((cert.slot, cert.value))
        if own:  # progress here: the next timeout is twice what this one took, not the base again
            self._backoff = self._level_for(2 * (self._now - self._armed_at))
        self._arm()
        self._propose_slots(out)

    def _propose_slots(self, out: Output) -> None:
        """As primary, open pre-prepares for up to ``window`` undecided slots."""
        v = self.view
        if not self.active or self.primary(v) != self.node_id:
            return
        low = next((s for s in range(self.slots) if s not in self._decided), self.slots)
        for s in range(low, min(self.slots, low + self.config.window)):
            if s in self._decided or (v, s) in self._pp:
                continue
            value = self._propose_fn(s)
            self._pp[(v, s)] = self._broadcast(Kind.PRE_PREPARE, v, s, digest_of(value), out, value)
            self._own[(Kind.PRE_PREPARE, v, s)] = self._voted_pp[(v, s)] = self._pp[(v, s)]
            self._progress(v, s, out)

    # --- view change ----------------------------------------------------------------------------

    def _start_view_change(self, new_view: int, out: Output) -> None:
        self.view, self.active = new_view, False
        self._forget_old_views()
        proof = [m for c in self._certs.values() for m in c.messages]
        proof += [m for s, c in self._prepared.items() if s not in self._decided for m in c.messages]
        if self.config.fast_path:
            proof += self._own_vote_report()
        own = self._broadcast(Kind.VIEW_CHANGE, new_view, 0, NIL, out, proof=tuple(proof))
        self._vcs.setdefault(new_view, {})[self.node_id] = own
        self._own[(Kind.VIEW_CHANGE, new_view, 0)] = own
        self._arm()
        self._maybe_new_view(out)

    def _on_view_change(self, msg: Message, out: Output) -> None:
        parsed = self._parse(msg)
        if parsed is None:
            return
        self._answer_laggard(msg.sender, parsed, out)
        if msg.view < self.view or (msg.view == self.view and self.active):
            return
        held = self._vcs.get(msg.view, {})
        if msg.view == self.view and msg.sender in held and self.node_id in held:
            self._answer_resend(msg.sender, held[self.node_id], out)
        waiting = self._waiting_for_quorum()
        self._vcs.setdefault(msg.view, {}).setdefault(msg.sender, msg)
        if waiting and not self._waiting_for_quorum():
            self._arm()  # q view-changes: now the new primary has T to deliver the new view
        self._maybe_join(out)
        self._maybe_new_view(out)

    def _waiting_for_quorum(self) -> bool:
        """Mid view change with fewer than q view-changes for our view.

        As in the paper, the new-view timer only starts once q replicas asked for the view. Until
        then the timer merely re-sends our view-change (lost ones are not re-sent by anyone
        else), so a replica whose messages were lost cannot race ahead through views alone.
        """
        if self.active:
            return False
        # A view-change for a later view also shows that its sender gave up on ours.
        asking = {p for v, vcs in self._vcs.items() if v >= self.view for p in vcs}
        return len(asking) < self.q

    def _answer_resend(self, peer: AgentId, own: Message, out: Output) -> None:
        """A peer re-sent its view-change: it still lacks q of them, perhaps ours (lost before the
        network healed; we re-send only while *we* lack q). Answer with ours, at most once per
        ``base_timeout`` per peer so that two replicas never ping-pong. A replica that is itself
        waiting for q does not answer: it re-sends to everyone on its own."""
        answered = self._answered_vc.get(peer, float("-inf"))
        if self._waiting_for_quorum() or self._now < answered + self.config.base_timeout:
            return
        self._answered_vc[peer] = self._now
        out.messages.append(self._signer.make(peer, Kind.VIEW_CHANGE, own.view, 0, NIL, proof=own.proof))

    def _resend_view_change(self, out: Output) -> None:
        own = self._vcs[self.view][self.node_id]
        self._send_all(Kind.VIEW_CHANGE, own.view, 0, NIL, out, proof=own.proof)
        self._arm()

    def _answer_laggard(self, peer: AgentId, parsed: _Parsed, out: Output) -> None:
        """Send a peer the commit certificates of the slots its view-change shows it lacks."""
        missing = [c for s, c in sorted(self._certs.items()) if s not in parsed.committed]
        if missing:
            proof = tuple(m for c in missing for m in c.messages)
            out.messages.append(self._signer.make(peer, Kind.DECIDED, self.view, 0, NIL, proof=proof))

    def _maybe_join(self, out: Output) -> None:
        """f+1 replicas asking for higher views include an honest one: follow to the lowest."""
        higher = {v: vcs for v, vcs in self._vcs.items() if v > self.view}
        senders = {p for vcs in higher.values() for p in vcs if p != self.node_id}
        if len(senders) >= self.f + 1:
            self._backoff += 1  # a view change like any other: the next view gets twice the time
            self._start_view_change(min(higher), out)

    def _maybe_new_view(self, out: Output) -> None:
        v = self.view
        vcs = self._vcs.get(v, {})
        if self.active or self.primary(v) != self.node_id or len(vcs) < self.q:
            return
        chosen = [vcs[self.node_id]] + [vcs[p] for p in sorted(vcs) if p != self.node_id][: self.q - 1]
        committed, reproposed = self._plan(chosen)
        o_set = tuple(
            self._signer.make(BROADCAST, Kind.PRE_PREPARE, v, c.slot, c.digest, c.value)
            for c in reproposed
        )
        self._broadcast(Kind.NEW_VIEW, v, 0, NIL, out, proof=tuple(chosen) + o_set)
        self._enter_view(v, committed, o_set, out)

    def _on_new_view(self, msg: Message, out: Output) -> None:
        v = msg.view
        if v < self.view or (v == self.view and self.active) or msg.sender != self.primary(v):
            return
        vcs = [m for m in msg.proof if m.kind is Kind.VIEW_CHANGE]
        o_set = tuple(m for m in msg.proof if m.kind is Kind.PRE_PREPARE)
        senders = {m.sender for m in vcs}
        if len(senders) != len(vcs) or len(vcs) < self.q or len(vcs) + len(o_set) != len(msg.proof):
            return
        if any(m.view != v or not self._keyring.verify(m) or self._parse(m) is None for m in vcs):
            return
        committed, reproposed = self._plan(vcs)
        expected = {c.slot: c.digest for c in reproposed}
        got = {m.slot: m.digest for m in o_set}
        if got != expected or len(got) != len(o_set):
            return
        if any(m.view != v or m.sender != msg.sender or not self._keyring.verify(m) for m in o_set):
            return
        if not all(self._valid_proposal(m) for m in o_set):
            return
        self._enter_view(v, committed, o_set, out)

    def _plan(self, vcs: Iterable[Message]) -> tuple[dict[int, Cert], list[Cert]]:
        """The new view's content: slots already decided, and the value to re-propose per slot.

        Deterministic in the view-changes alone, so every replica can recompute and check it.
        Per slot the highest view wins; at equal views a prepared certificate beats a fast-path
        candidate (a fast decision in view v leaves no room for another prepared digest in v).
        """
        committed: dict[int, Cert] = {}
        best: dict[int, tuple[int, int, str, Cert]] = {}
        reported: dict[tuple[int, int, str], dict[AgentId, Message]] = {}
        for vc in vcs:
            parsed = self._parse(vc)
            assert parsed is not None  # callers verified every view-change first
            for s, c in parsed.committed.items():
                committed.setdefault(s, c)
            for c in parsed.prepared.values():
                self._offer(best, (c.view, 1, c.digest, c))
            for key, pp in parsed.own_votes.items():
                reported.setdefault(key, {})[vc.sender] = pp
        for (v, s, d), voters in reported.items():
            if len(voters) >= self.q - self.f:  # enough own votes that a fast decision is possible
                pp = next(iter(voters.values()))
                assert pp.value is not None
                self._offer(best, (v, 0, d, Cert(v, s, d, pp.value, (pp,))))
        reproposed = [best[s][3] for s in sorted(best) if s not in committed]
        return committed, reproposed

    @staticmethod
    def _offer(best: dict[int, tuple[int, int, str, Cert]], cand: tuple[int, int, str, Cert]) -> None:
        s = cand[3].slot
        if s not in best or cand[:3] > best[s][:3]:
            best[s] = cand

    def _own_vote_report(self) -> list[Message]:
        """Fast path: every pre-prepare this replica voted for (or sent) plus its own vote."""
        report: list[Message] = []
        for (kind, v, s), m in self._own.items():
            if s in self._decided or kind not in (Kind.PREPARE, Kind.PRE_PREPARE):
                continue
            pp = self._voted_pp.get((v, s))
            if pp is not None:
                report += [pp, m] if kind is Kind.PREPARE else [pp]
        return report

    def _enter_view(
        self, v: int, committed: Mapping[int, Cert], o_set: tuple[Message, ...], out: Output
    ) -> None:
        self.view, self.active = v, True
        self._forget_old_views()
        for s in sorted(committed):
            self._decide(committed[s], out)
        for m in o_set:
            self._pp[(v, m.slot)] = m  # the new-view's choice overrides anything buffered
        self._arm()
        for vv, s in sorted(self._pp):
            if vv == v:
                self._progress(v, s, out)
        self._propose_slots(out)

    def _forget_old_views(self) -> None:
        v = self.view
        self._pp = {k: m for k, m in self._pp.items() if k[0] >= v}
        self._votes = {k: m for k, m in self._votes.items() if k[1] >= v}
        self._vcs = {k: m for k, m in self._vcs.items() if k >= v}

    # --- certificates ---------------------------------------------------------------------------

    def _on_decided(self, msg: Message, out: Output) -> None:
        parsed = self._parse(msg)
        if parsed is not None:
            for s in sorted(parsed.committed):
                self._decide(parsed.committed[s], out)

    def _parse(self, msg: Message) -> _Parsed | None:
        """Certificates proven by a message's embedded messages; None if any part is bogus."""
        if msg.mac not in self._parsed:
            self._parsed[msg.mac] = self._parse_proof(msg.sender, msg.proof)
        return self._parsed[msg.mac]

    def _parse_proof(self, reporter: AgentId, proof: tuple[Message, ...]) -> _Parsed | None:
        pps: dict[tuple[int, int, str], Message] = {}
        votes: dict[_VoteKey, dict[AgentId, Message]] = {}
        voted: list[tuple[int, int, str]] = []
        for m in proof:
            if not 0 <= m.slot < self.slots or not self._keyring.verify(m) or m.proof:
                return None
            if m.kind is Kind.PRE_PREPARE:
                if m.sender != self.primary(m.view) or not self._valid_proposal(m):
                    return None
                pps[(m.view, m.slot, m.digest)] = m
                if m.sender == reporter:
                    voted.append((m.view, m.slot, m.digest))
            elif m.kind in (Kind.PREPARE, Kind.COMMIT):
                if m.kind is Kind.PREPARE and m.sender == self.primary(m.view):
                    return None
                votes.setdefault((m.kind, m.view, m.slot, m.digest), {})[m.sender] = m
                if m.kind is Kind.PREPARE and m.sender == reporter:
                    voted.append((m.view, m.slot, m.digest))
            else:
                return None
        committed: dict[int, Cert] = {}
        prepared: dict[int, Cert] = {}
        for (v, s, d), pp in pps.items():
            assert pp.value is not None
            commits = votes.get((Kind.COMMIT, v, s, d), {})
            if len(commits) >= self.q:
                committed.setdefault(s, Cert(v, s, d, pp.value, (pp, *self._first(commits, self.q))))
            prepares = votes.get((Kind.PREPARE, v, s, d), {})
            if self.config.fast_path and len(prepares) == self.n - 1:  # a fast-path decision
                committed.setdefault(s, Cert(v, s, d, pp.value, (pp, *self._first(prepares, self.n - 1))))
            if len(prepares) >= self.q - 1 and (s not in prepared or prepared[s].view < v):
                prepared[s] = Cert(v, s, d, pp.value, (pp, *self._first(prepares, self.q - 1)))
        own_votes = {k: pps[k] for k in voted if k in pps} if self.config.fast_path else {}
        return _Parsed(committed, prepared, own_votes)

    # --- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def _first(votes: Mapping[AgentId, Message], k: int) -> tuple[Message, ...]:
        return tuple(votes[p] for p in sorted(votes)[:k])

    def _arm(self) -> None:
        """Run the timer while some slot is undecided: base x 2^backoff (see the module docstring)."""
        if self.done:
            self._deadline = None
            return
        backoff = 0 if self._waiting_for_quorum() else min(self._backoff, self.config.max_backoff)
        self._deadline = self._now + self.config.base_timeout * (2**backoff)
        self._armed_at = self._now

    def _level_for(self, needed: float) -> int:
        """The smallest backoff level whose timeout is at least ``needed`` (capped)."""
        level = 0
        while level < self.config.max_backoff and self.config.base_timeout * 2**level < needed:
            level += 1
        return level

    def _restore(self, saved: PbftPersisted) -> None:
        self.view, self.active = saved.view, saved.active
        self._certs = dict(saved.decided)
        self._decided = {s: c.value for s, c in saved.decided.items()}
        self._prepared = dict(saved.prepared)
        self._voted_pp = {(m.view, m.slot): m for m in saved.voted}
        for m in saved.own:
            self._own[(m.kind, m.view, m.slot)] = m
            if m.kind is Kind.PRE_PREPARE:
                self._pp[(m.view, m.slot)] = m
            elif m.kind is Kind.VIEW_CHANGE:
                self._vcs.setdefault(m.view, {})[self.node_id] = m
            else:
                self._votes.setdefault((m.kind, m.view, m.slot, m.digest), {})[self.node_id] = m

    _handlers = {
        Kind.PRE_PREPARE: _on_pre_prepare,
        Kind.PREPARE: _on_vote,
        Kind.COMMIT: _on_vote,
        Kind.VIEW_CHANGE: _on_view_change,
        Kind.NEW_VIEW: _on_new_view,
        Kind.DECIDED: _on_decided,
    }
