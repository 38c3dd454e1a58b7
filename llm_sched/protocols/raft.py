"""Raft (Ongaro and Ousterhout, USENIX ATC 2014) as a sans-IO core, crash-fault model.

Leader election: a follower that hears no leader for a randomized election timeout (drawn from a
seeded ``random.Random`` handed in) becomes a candidate for term+1 and sends REQUEST-VOTE to the
n-1 others; a majority of votes (its own included) makes it leader: 2(n-1) messages per candidate.
Replication: the leader appends one entry per slot and sends it in APPEND-ENTRIES to each follower,
who answers: 2(n-1) messages per decision. An entry of the leader's term stored on a majority is
committed; followers learn the commit index from the next append or heartbeat.

Choices, each for a reason:
- Each AppendEntries carries at most one entry, so the count per decision is exactly Raft's.
  The leader keeps at most ``window`` uncommitted entries in flight, and a follower holds an entry
  that overtook its predecessor (the network reorders) until the gap fills.
- Log index and application slot differ: a new leader with uncommitted entries of older terms
  appends a no-op (Raft section 5.4.2: it may only count replicas for entries of its own term).
- The run has a known number of slots, so agents go quiet once everything is decided and known:
  once every follower reported the final commit index the leader sends one last heartbeat saying
  so and stops; a follower that decided every slot stops its election timer only on that word (a
  leader that crashes while some agent still lags is then noticed by every follower, not by the
  laggard alone). A finished agent that receives a vote request from a candidate with a shorter
  log arms its election timer once (until it hears a leader), so a lagging agent is never left
  without an up-to-date leader, and the laggard's repeated requests do not postpone it.
- Elections (liveness only; safety rests on terms, votes and the log check alone): adopting a newer
  term does not restart the election timer (Figure 2: only a granted vote or the leader's
  AppendEntries do), so a candidate that cannot win does not postpone everyone else's candidacy.
  A stale AppendEntries is answered with the newer term (Figure 2). A leader deposed by a newer
  term from an agent that lacks entries it committed (one that raised its term alone behind a
  partition and can never win) stands again at once. Two candidates of one term that learn of each
  other break the tie at once: the lower id stands for the next term, which the other grants (with
  n = 4 and one agent down every vote is needed, and a split would otherwise cost a whole election
  timeout). A new leader with nothing to append announces itself with a heartbeat at once.
- Persisted (``RaftPersisted``): term, vote, log and decided slots, as in the paper; the commit
  index, leader state and timers are volatile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from llm_sched.protocols.core_base import CANDIDATE, FOLLOWER, LEADER, StableLeaderConfig, StableLeaderCore
from llm_sched.protocols.messages import NIL, AgentId, Kind, Message, Output, Value, digest_of
from llm_sched.protocols.quorum import majority

RaftConfig = StableLeaderConfig  # ``window`` bounds the uncommitted entries in flight


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry: the term it was created in and the slot it decides (-1: a no-op)."""

    term: int
    slot: int
    value: Value | None


@dataclass(frozen=True, slots=True)
class RaftPersisted:
    """Raft's persistent state (term, vote, log) plus the decided slots."""

    term: int
    voted_for: AgentId | None
    log: tuple[Entry, ...]
    decided: Mapping[int, Value]


def _pack(*numbers: int) -> bytes:
    return "|".join(map(str, numbers)).encode()


def _unpack(payload: bytes, count: int) -> list[int] | None:
    try:
        numbers = [int(x) for x in payload.decode().split("|")]
    except ValueError:
        return None
    return numbers if len(numbers) == count else None


class RaftCore(StableLeaderCore[RaftPersisted]):
    """One Raft server deciding slots 0 .. slots-1."""

    def _setup(self) -> None:
        """A server that has not started: a follower in term 0 with an empty log."""
        self.majority = self.config.quorum or majority(self.n)
        self.term, self.voted_for = 0, cast(AgentId | None, None)
        self.log: list[Entry] = []
        self.leader: AgentId | None = None  # the leader of the current term, once heard from (or us)
        self.commit = -1
        self._votes: set[AgentId] = set()
        self._next: dict[AgentId, int] = {}
        self._match: dict[AgentId, int] = {}
        self._known_commit: dict[AgentId, int] = {}
        self._wanted = False  # finished, but a lagging peer asked for votes: keep the election timer
        self._quiet = False  # the leader said everyone has everything: followers may stop their timers
        self._said_quiet = False  # leader: that final heartbeat went out
        self._early: dict[int, Message] = {}  # log index -> an entry that arrived before its predecessor

    def _restore(self, saved: RaftPersisted) -> None:
        self.term, self.voted_for = saved.term, saved.voted_for
        self.log = list(saved.log)
        self._decided = dict(saved.decided)

    # --- public interface -------------------------------------------------------------------

    def persisted(self) -> RaftPersisted:
        """Snapshot of the durable state (see :class:`RaftPersisted`)."""
        return RaftPersisted(self.term, self.voted_for, tuple(self.log), dict(self._decided))

    def leadership(self) -> tuple[int, AgentId] | None:
        """(term, leader) as this agent knows them, or None while it knows no leader."""
        return None if self.leader is None else (self.term, self.leader)

    def _receive(self, msg: Message, out: Output) -> None:
        """Any newer term is adopted first; then the handler runs if the message is of our term,
        and a stale candidate or leader learns the newer term."""
        rerun = False
        if msg.view > self.term:  # any newer term: adopt it and follow
            was_leader = self.role == LEADER
            rerun = was_leader and self._cannot_win(msg)
            self.term, self.voted_for, self.role, self.leader = msg.view, None, FOLLOWER, None
            self._quiet = False
            self._early.clear()
            if was_leader or self._deadline is None:
                self._arm()  # a deposed leader (or a finished agent) needs an election timer again
            # Otherwise the election timer keeps running: only a granted vote or the leader's
            # AppendEntries restart it (Raft, Figure 2). Restarting it for every newer term lets
            # a candidate that cannot win (its log is behind) postpone every other election.
        handler = self._handlers.get(msg.kind)
        if handler is not None and msg.view == self.term:
            handler(self, msg, out)
        elif msg.kind is Kind.REQUEST_VOTE:  # a stale candidate still gets its "no"
            self._send(msg.sender, Kind.VOTE, 0, payload=_pack(0), out=out)
        elif msg.kind in (Kind.APPEND, Kind.HEARTBEAT):  # a stale leader learns the newer term (Figure 2)
            reply = Kind.APPEND_REPLY if msg.kind is Kind.APPEND else Kind.HEARTBEAT_REPLY
            self._send(msg.sender, reply, 0, payload=_pack(0, len(self.log), self.commit), out=out)
        if rerun and self.role == FOLLOWER and self.voted_for is None:
            # Deposed by a newer term from an agent that lacks entries we committed (a server that
            # kept raising its term alone behind a partition): it can never win, we can. Stand at
            # once instead of leaving the cluster leaderless for an election timeout.
            self._stand_for_leader(out)

    def _cannot_win(self, msg: Message) -> bool:
        """The sender of this newer-term message lacks an entry this leader committed, so a
        majority (which holds that entry) will never elect it."""
        if self.commit < 0:
            return False
        if msg.kind is Kind.REQUEST_VOTE:
            fields = _unpack(msg.payload, 1)
            return fields is not None and (fields[0], msg.slot) < (self.log[self.commit].term, self.commit)
        if msg.kind in (Kind.APPEND_REPLY, Kind.HEARTBEAT_REPLY):
            fields = _unpack(msg.payload, 3)  # a refusal reports the sender's log length
            return fields is not None and fields[0] == 0 and fields[1] <= self.commit
        return False

    # --- elections ------------------------------------------------------------------------------

    def _stand_for_leader(self, out: Output) -> None:
        self.term += 1
        self.role, self.voted_for, self._votes = CANDIDATE, self.node_id, {self.node_id}
        self.leader, self._quiet = None, False
        last = len(self.log) - 1
        self._send_all(Kind.REQUEST_VOTE, self.term, last, NIL, out, payload=_pack(self._last_term()))
        self._arm()
        self._maybe_lead(out)

    def _on_request_vote(self, msg: Message, out: Output) -> None:
        fields = _unpack(msg.payload, 1)
        if fields is None:
            return
        theirs = (fields[0], msg.slot)  # (last log term, last log index)
        up_to_date = theirs >= (self._last_term(), len(self.log) - 1)
        grant = up_to_date and self.voted_for in (None, msg.sender) and self.role != LEADER
        if grant:
            self.voted_for = msg.sender
            self._arm()
        self._send(msg.sender, Kind.VOTE, 0, payload=_pack(int(grant)), out=out)
        if not up_to_date and self.done and self.role == FOLLOWER and not self._wanted:
            self._wanted = True  # a lagging peer needs a leader with the whole log: stand by
            self._arm()  # once: the laggard's next requests must not postpone our candidacy
        if self.role == CANDIDATE and self.node_id < msg.sender and theirs <= (self._last_term(), len(self.log) - 1):
            # Two candidates in one term, each with its own vote. When every live server's vote
            # is needed (n = 4 with one down) neither can win, and randomized timers alone retry
            # a whole election timeout later. Break the tie at once: the lower id stands again
            # for the next term, which the other (its log no newer) grants.
            self._stand_for_leader(out)

    def _on_vote(self, msg: Message, out: Output) -> None:
        fields = _unpack(msg.payload, 1)
        if self.role == CANDIDATE and fields == [1]:
            self._votes.add(msg.sender)
            self._maybe_lead(out)

    def _maybe_lead(self, out: Output) -> None:
        if self.role != CANDIDATE or len(self._votes) < self.majority:
            return
        self.role, self.leader, self._said_quiet = LEADER, self.node_id, False
        self._next = {p: len(self.log) for p in self.others}
        self._match = {p: -1 for p in self.others}
        self._known_commit = {p: -1 for p in self.others}
        if self.commit < len(self.log) - 1:  # older-term entries can only commit under a new one
            self.log.append(Entry(self.term, -1, None))
        self._fill()
        idle = [p for p in self.others if self._next[p] == len(self.log)]
        self._replicate(out)
        for p in idle:  # nothing to append: announce the new term at once (Raft, section 5.2)
            self._send_heartbeat(p, out)
        self._advance_commit(out)
        self._arm()

    # --- replication ----------------------------------------------------------------------------

    def _fill(self) -> None:
        """Append entries for slots not yet in the log, up to ``window`` uncommitted ones."""
        logged = {e.slot for e in self.log}
        for s in range(self.slots):
            if len(self.log) - 1 - self.commit >= self.config.window:
                break
            if s not in logged and s not in self._decided:
                self.log.append(Entry(self.term, s, self._propose_fn(s)))

    def _replicate(self, out: Output, to: Sequence[AgentId] | None = None) -> None:
        """Send every follower the entries it has not been sent yet (pipelined)."""
        sent = False
        for p in self.others if to is None else to:
            while self._next[p] < len(self.log):
                self._send_entry(p, self._next[p], out)
                self._next[p] += 1
                sent = True
        if sent:
            self._arm()  # heartbeats are for idle periods: traffic postpones the next one

    def _send_entry(self, p: AgentId, index: int, out: Output) -> None:
        e = self.log[index]
        prev_term = self.log[index - 1].term if index > 0 else -1
        payload = _pack(index - 1, prev_term, self.commit, e.term)
        self._send(p, Kind.APPEND, e.slot, digest_of(e.value), e.value, payload, out)

    def _heartbeat(self, out: Output) -> None:
        """Re-send what a follower lacks, else a heartbeat with the commit index."""
        last = len(self.log) - 1
        for p in self.others:
            if self._match[p] < last:
                self._next[p] = self._match[p] + 1
                self._send_entry(p, self._next[p], out)
                self._next[p] += 1
            elif self._known_commit[p] < self.commit or not self._finished():
                self._send_heartbeat(p, out)
        self._arm()

    def _send_heartbeat(self, p: AgentId, out: Output) -> None:
        """An AppendEntries without entries; its last field says the leader has finished (every
        slot committed and known to every follower), so followers may stop their election timers."""
        payload = _pack(len(self.log) - 1, self._last_term(), self.commit, int(self._finished()))
        self._send(p, Kind.HEARTBEAT, -1, payload=payload, out=out)

    def _on_append(self, msg: Message, out: Output) -> None:
        entry = msg.kind is Kind.APPEND
        fields = _unpack(msg.payload, 4)
        if fields is None:
            return
        prev_index, prev_term, leader_commit = fields[:3]
        self.role, self._wanted, self.leader = FOLLOWER, False, msg.sender
        self._quiet = not entry and fields[3] == 1
        self._arm()
        reply = Kind.APPEND_REPLY if entry else Kind.HEARTBEAT_REPLY
        if entry and len(self.log) <= prev_index < len(self.log) + self.config.window:
            # Overtaken by a later entry of the same leader: hold it until the gap fills instead
            # of making the leader resend (the network reorders; TCP would not).
            self._early[prev_index + 1] = msg
            return
        if prev_index >= len(self.log) or (prev_index >= 0 and self.log[prev_index].term != prev_term):
            hint = min(len(self.log), prev_index)  # the leader retries from here
            self._send(msg.sender, reply, 0, payload=_pack(0, hint, self.commit), out=out)
            return
        match = prev_index
        if entry:
            match = prev_index + 1
            new = Entry(fields[3], msg.slot, msg.value)
            if match < len(self.log) and self.log[match].term != new.term:
                del self.log[match:]  # a conflicting suffix from a deposed leader
            if match == len(self.log):
                self.log.append(new)
        self._commit_to(min(leader_commit, match), out)
        self._send(msg.sender, reply, 0, payload=_pack(1, match, self.commit), out=out)
        held = self._early.pop(len(self.log), None)
        if held is not None:
            self._on_append(held, out)

    def _on_reply(self, msg: Message, out: Output) -> None:
        fields = _unpack(msg.payload, 3)
        if self.role != LEADER or fields is None:
            return
        ok, index, their_commit = fields
        p = msg.sender
        self._known_commit[p] = max(self._known_commit[p], their_commit)
        if ok:
            self._match[p] = max(self._match[p], index)
            self._next[p] = max(self._next[p], index + 1)
            self._advance_commit(out)
            self._replicate(out, (p,))  # after a retransmission, stream the rest
        elif index < self._next[p]:
            self._next[p] = max(0, index)
            self._replicate(out, (p,))
        if self._finished():
            if not self._said_quiet:  # tell the followers they may stop their election timers
                self._said_quiet = True
                for q in self.others:
                    self._send_heartbeat(q, out)
            self._arm()

    def _advance_commit(self, out: Output) -> None:
        for n in range(len(self.log) - 1, self.commit, -1):
            if self.log[n].term != self.term:
                break  # only entries of the leader's own term are counted (section 5.4.2)
            if 1 + sum(m >= n for m in self._match.values()) >= self.majority:
                self._commit_to(n, out)
                self._fill()
                self._replicate(out)
                break

    def _commit_to(self, index: int, out: Output) -> None:
        for i in range(self.commit + 1, index + 1):
            e = self.log[i]
            if e.slot >= 0 and e.slot not in self._decided and e.value is not None:
                self._decided[e.slot] = e.value
                out.decisions.append((e.slot, e.value))
        self.commit = max(self.commit, index)
        if self.done and self.role != LEADER:
            self._arm()

    # --- plumbing -------------------------------------------------------------------------------

    def _finished(self) -> bool:
        """Leader: every slot committed and every follower knows the final commit index."""
        last = len(self.log) - 1
        return self.done and self.commit == last and all(
            self._match[p] == last and self._known_commit[p] == last for p in self.others
        )

    def _last_term(self) -> int:
        return self.log[-1].term if self.log else -1

    def _send(
        self, to: AgentId, kind: Kind, slot: int, digest: str = NIL, value: Value | None = None,
        payload: bytes = b"", out: Output | None = None,
    ) -> None:
        assert out is not None
        out.messages.append(self._signer.make(to, kind, self.term, slot, digest, value, payload))

    def _at_rest(self) -> bool:
        """Nothing left to decide, and the leader says nobody lags: no elections."""
        return super()._at_rest() and self._quiet and not self._wanted

    _handlers = {
        Kind.REQUEST_VOTE: _on_request_vote,
        Kind.VOTE: _on_vote,
        Kind.APPEND: _on_append,
        Kind.HEARTBEAT: _on_append,
        Kind.APPEND_REPLY: _on_reply,
        Kind.HEARTBEAT_REPLY: _on_reply,
    }
