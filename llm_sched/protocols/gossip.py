"""Epidemic (gossip) voting: signed proposals and votes spread by push and pull, as a sans-IO core.

Per slot, the proposer ``peers[(slot + r) % n]`` of round r signs a proposal; every agent signs one
vote, for a valid proposal it holds (the best supported one), and never another. These
*originals* are not sent on their own: agents exchange GOSSIP envelopes carrying the originals the
receiver is not known to hold. An agent decides a slot once it holds q = byzantine_quorum(n)
votes for one value (a proposal counts as its proposer's vote). Slots are voted on in order (the
feasibility of a placement depends on the ones before it); any slot can be decided.

Dissemination: an agent that votes starts ``push_rounds`` gossip rounds (one every ``period``, the
first at once); each round it pushes to the next ``fanout`` = k peers of a deck of the other agents
shuffled by its own seeded RNG (SWIM's round-robin over a random permutation). With the default
``push_rounds`` = ceil((n-1)/k) the deck is dealt exactly once, so on a reliable network every
vote reaches every agent directly within that many rounds, and relaying (an envelope carries all
the sender holds that the receiver may lack) makes agents decide sooner: at n = 10 every agent
had decided after 7.0, 3.8, 3.0 and 1.0 rounds on average for k = 1, 2, 3, 9 (decks of 9, 5, 3
and 1 rounds; measured in tests/consensus/test_gossip.py). An agent still undecided
``stall_rounds`` rounds into a slot pulls: GOSSIP-PULL to k peers with the ids of what it holds,
and they answer with the rest; pulls back off, and they are what repairs lost pushes.

Messages per decision in the normal case: every agent pushes once to each other agent, n(n-1)
GOSSIP envelopes whatever k (n=4: 12, n=5: 20, n=7: 42, n=10: 90); k sets how many an agent
sends per round (its load) and how many rounds a decision takes, not the total.

What it guarantees, with up to f = floor((n-1)/3) Byzantine agents:
- Agreement, under any schedule: two values with q votes each would need an honest agent that
  voted twice (2q - n >= f+1), and honest agents vote once per slot, even across restarts.
- Validity: a decided value has honest votes, and honest agents vote only for values their
  feasibility check accepts.
- Termination only for a slot whose proposals do not split the honest votes. Votes are never
  withdrawn (that is what keeps agreement without locks), so a proposer that equivocates, or a
  proposal that reached only some agents before the others turned to the next proposer (after
  ``proposer_rounds`` rounds without a valid proposal, doubling per round), can leave the slot
  undecided for good (in the tests, colluding equivocators did so in about one run in six).
  Silent proposers and proposers of infeasible values cost a proposer timeout each; an agent
  that sees f+1 votes for a proposal it lacks pulls it rather than vote for another. With honest
  or merely silent or lying proposers, pulls make every honest agent decide on a connected
  network, whatever the losses before GST.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from llm_sched.protocols.core_base import BftCore
from llm_sched.protocols.messages import (
    BROADCAST,
    NIL,
    AgentId,
    KeyRing,
    Kind,
    Message,
    Output,
    Propose,
    Signer,
    Validate,
    Value,
    digest_of,
)

_ID = 32  # bytes of an HMAC-SHA256 tag: an original's id in a pull's list


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """``fanout`` peers per gossip round of ``period`` time units; unset round counts follow n, k.

    ``push_rounds`` defaults to ceil((n-1)/k); ``stall_rounds`` (when an undecided agent starts to
    pull) to 2 push_rounds + 4; ``proposer_rounds`` (how long to wait for a valid proposal before
    turning to the next proposer, doubled per proposer round) to three times that: long enough
    for pulls to find a proposal that is out there, since votes for two proposals never merge.
    ``quorum`` overrides q only to show that a smaller one is unsafe.
    """

    fanout: int = 2
    period: float = 2.0
    push_rounds: int | None = None
    stall_rounds: int | None = None
    proposer_rounds: int | None = None
    max_backoff: int = 3
    quorum: int | None = None


@dataclass(frozen=True, slots=True)
class GossipPersisted:
    """Durable state: decisions and this agent's own originals (so it never votes twice)."""

    decided: Mapping[int, Value]
    own: tuple[Message, ...]


@dataclass(slots=True)
class _Slot:
    """One slot as this agent knows it."""

    held: dict[bytes, Message] = field(default_factory=dict)  # originals by MAC, in arrival order
    proposals: dict[str, Message] = field(default_factory=dict)  # by digest, of any round
    votes: dict[AgentId, Message] = field(default_factory=dict)  # first vote (or proposal) per agent
    known: dict[AgentId, set[bytes]] = field(default_factory=dict)  # what each peer surely holds
    mine: Message | None = None  # our vote (or our proposal)
    round: int = 0
    started: float | None = None  # when voting on this slot began here
    deck: list[AgentId] = field(default_factory=list)  # peers still to push to
    pull_deck: list[AgentId] = field(default_factory=list)
    pushes_left: int = 0
    next_push: float | None = None
    next_pull: float | None = None
    pulls: int = 0


class GossipCore(BftCore[GossipConfig, GossipPersisted]):
    """One gossiping agent deciding slots 0 .. slots-1; ``_deadline`` is its earliest timer."""

    DEFAULT_CONFIG: ClassVar[GossipConfig] = GossipConfig()

    def __init__(
        self, node_id: AgentId, peers: Sequence[AgentId], slots: int, signer: Signer,
        keyring: KeyRing, propose: Propose, validate: Validate, rng: random.Random,
        config: GossipConfig | None = None, restore: GossipPersisted | None = None,
    ) -> None:
        self._rng = rng  # seeded by the caller: the order peers are dealt in replays exactly
        super().__init__(node_id, peers, slots, signer, keyring, propose, validate, config, restore)

    def _setup(self) -> None:
        """An agent that has not started: nothing held, slot 0, the round counts from n and k."""
        config = self.config
        self._byzantine_quorum(config.quorum)
        self.k = max(1, min(config.fanout, len(self.others)))
        self.push_rounds = config.push_rounds or math.ceil(len(self.others) / self.k)
        self.stall_rounds = config.stall_rounds or 2 * self.push_rounds + 4
        self.proposer_rounds = config.proposer_rounds or 3 * self.stall_rounds
        self._state: dict[int, _Slot] = {}
        self.slot = 0  # the lowest undecided slot: the one this agent votes on

    def _restore(self, saved: GossipPersisted) -> None:
        self._decided = dict(saved.decided)
        for m in saved.own:
            self._hold(m.slot, m)
            self._slot(m.slot).mine = m

    # --- public interface -------------------------------------------------------------------

    def proposer(self, slot: int, round_: int) -> AgentId:
        """Round-robin proposer by (slot + round)."""
        return self.peers[(slot + round_) % self.n]

    def persisted(self) -> GossipPersisted:
        """Snapshot of the durable state (see :class:`GossipPersisted`)."""
        own = tuple(st.mine for _, st in sorted(self._state.items()) if st.mine is not None)
        return GossipPersisted(dict(self._decided), own)

    def _start(self, out: Output) -> None:
        """The first tick: start voting on the lowest undecided slot, then run what is due."""
        self._advance(out)
        self._on_tick(out)

    def _on_tick(self, out: Output) -> None:
        """Push, pull and rotate proposers where due."""
        for s in sorted(self._state):
            self._due(s, out)
        self._arm()

    def _receive(self, msg: Message, out: Output) -> None:
        """An envelope: take the originals it carries (a pull also asks for what the sender lacks)."""
        if 0 <= msg.slot < self.slots:
            if msg.kind is Kind.GOSSIP:
                self._absorb(msg.slot, msg.sender, msg.proof, out)
            elif msg.kind is Kind.GOSSIP_PULL:
                self._on_pull(msg, out)
        self._arm()

    # --- receiving originals ----------------------------------------------------------------------

    def _absorb(self, s: int, peer: AgentId, originals: Iterable[Message], out: Output) -> None:
        """Keep the well-formed originals of an envelope, then vote and decide if now possible."""
        st = self._slot(s)
        known = st.known.setdefault(peer, set())
        for m in originals:
            if m.slot != s or m.proof or not self._keyring.verify(m):
                continue
            known.add(m.mac)
            self._hold(s, m)
        self._maybe_vote(s, out)
        self._maybe_decide(s, out)

    def _hold(self, s: int, m: Message) -> None:
        """Store an original if it is a proposal by the round's proposer or an agent's first vote."""
        st = self._slot(s)
        if m.mac in st.held:
            return
        if m.kind is Kind.GOSSIP_PROPOSAL:
            value = m.value
            # Every proposal is kept, even a second one of a round (the proposer equivocates):
            # keeping only the first could hide from us the one the others vote for.
            if m.view < 0 or m.sender != self.proposer(s, m.view) or value is None:
                return
            if digest_of(value) != m.digest or m.digest in st.proposals:
                return
            st.proposals[m.digest] = m
        elif m.kind is not Kind.GOSSIP_VOTE or m.digest == NIL or m.sender in st.votes:
            return
        st.votes.setdefault(m.sender, m)  # a proposal is its proposer's vote
        st.held[m.mac] = m

    # --- voting and deciding ----------------------------------------------------------------------

    def _maybe_vote(self, s: int, out: Output) -> None:
        """Vote once, on the current slot, for the best-supported valid proposal of a round reached."""
        st = self._slot(s)
        if s != self.slot or st.mine is not None or st.started is None or self._missing(st):
            return
        support = dict.fromkeys(st.proposals, 0)
        for v in st.votes.values():
            if v.digest in support:
                support[v.digest] += 1
        candidates = [
            (-support[d], p.view, d, p) for d, p in st.proposals.items()
            if p.view <= st.round and p.value is not None and self._validate(s, p.value)
        ]
        if not candidates:
            return
        chosen = min(candidates, key=lambda c: c[:3])[3]
        self._cast(s, self._signer.make(BROADCAST, Kind.GOSSIP_VOTE, chosen.view, s, chosen.digest), out)

    def _propose(self, s: int, out: Output) -> None:
        """As the round's proposer with no vote cast yet: our proposal is also our vote."""
        st = self._slot(s)
        value = self._propose_fn(s)
        proposal = self._signer.make(BROADCAST, Kind.GOSSIP_PROPOSAL, st.round, s, digest_of(value), value)
        self._cast(s, proposal, out)

    def _cast(self, s: int, own: Message, out: Output) -> None:
        """Record our one original for the slot and start pushing it."""
        st = self._slot(s)
        st.mine = own
        self._hold(s, own)
        st.deck = list(self.others)
        self._rng.shuffle(st.deck)
        st.pushes_left = self.push_rounds
        self._push(s, out)
        self._maybe_decide(s, out)

    def _maybe_decide(self, s: int, out: Output) -> None:
        st = self._slot(s)
        if s in self._decided:
            return
        tally: dict[str, int] = {}
        for v in st.votes.values():
            tally[v.digest] = tally.get(v.digest, 0) + 1
        for p in st.proposals.values():
            if p.value is not None and tally.get(p.digest, 0) >= self.q:
                self._decided[s] = p.value
                out.decisions.append((s, p.value))
                if st.mine is None:
                    # Decided before our turn to vote (slots are voted on in order): vote for the
                    # decided value anyway, since agents counting on our vote may lack a Byzantine one.
                    self._cast(s, self._signer.make(BROADCAST, Kind.GOSSIP_VOTE, p.view, s, p.digest), out)
                self._advance(out)
                return

    def _advance(self, out: Output) -> None:
        """Move to the lowest undecided slot and start voting on it."""
        while self.slot < self.slots and self.slot in self._decided:
            self.slot += 1
        if self.slot >= self.slots:
            return
        st = self._slot(self.slot)
        if st.started is not None:
            return
        st.started = self._now
        st.next_pull = self._now + self.stall_rounds * self.config.period
        if st.mine is None and self.proposer(self.slot, 0) == self.node_id:
            self._propose(self.slot, out)
        self._maybe_vote(self.slot, out)
        self._maybe_decide(self.slot, out)

    # --- timers: pushes, pulls, proposer rotation -------------------------------------------------

    def _due(self, s: int, out: Output) -> None:
        st = self._slot(s)
        now = self._now
        if st.next_push is not None and now >= st.next_push:
            self._push(s, out)
        if s != self.slot or s in self._decided or st.started is None:
            return
        if st.mine is None and now >= self._round_end(st):
            self._next_proposer(s, out)
        if st.next_pull is not None and now >= st.next_pull:
            self._pull(s, out)

    def _round_end(self, st: _Slot) -> float:
        """Proposer round r lasts proposer_rounds * 2**r gossip rounds (capped): a partition that
        heals in time leaves the agents behind it still waiting for the proposal, not proposing."""
        assert st.started is not None
        rounds = sum(2 ** min(r, self.config.max_backoff) for r in range(st.round + 1))
        return st.started + rounds * self.proposer_rounds * self.config.period

    def _next_proposer(self, s: int, out: Output) -> None:
        """No valid proposal in time: accept the next round's proposer; propose if it is us."""
        st = self._slot(s)
        st.round += 1
        if self.proposer(s, st.round) == self.node_id and not self._missing(st) and not self._holds_valid_proposal(s):
            self._propose(s, out)
        self._maybe_vote(s, out)

    def _holds_valid_proposal(self, s: int) -> bool:
        return any(p.value is not None and self._validate(s, p.value) for p in self._slot(s).proposals.values())

    def _missing(self, st: _Slot) -> bool:
        """f+1 votes for a proposal we lack: an honest agent holds it, so pull it rather than vote
        for (or make) another and split the honest votes."""
        tally: dict[str, int] = {}
        for v in st.votes.values():
            tally[v.digest] = tally.get(v.digest, 0) + 1
        return any(c > self.f and d not in st.proposals for d, c in tally.items())

    def _push(self, s: int, out: Output) -> None:
        """One gossip round: the next k peers of the deck get what they may lack."""
        st = self._slot(s)
        if st.pushes_left <= 0:
            st.next_push = None
            return
        st.pushes_left -= 1
        st.next_push = self._now + self.config.period if st.pushes_left > 0 else None
        # Deal from the deck without refilling it: over push_rounds rounds each peer once.
        dealt, st.deck = st.deck[-self.k :], st.deck[: -self.k]
        for peer in reversed(dealt):
            self._send_delta(s, peer, Kind.GOSSIP, out)

    def _pull(self, s: int, out: Output) -> None:
        """Undecided too long: ask k peers for what we lack (and give them what they may lack)."""
        st = self._slot(s)
        st.pulls += 1
        backoff = min(st.pulls, self.config.max_backoff)
        st.next_pull = self._now + self.config.period * 2**backoff
        ids = b"".join(st.held)
        for peer in self._deal(st.pull_deck):
            self._send_delta(s, peer, Kind.GOSSIP_PULL, out, ids)

    def _deal(self, deck: list[AgentId]) -> list[AgentId]:
        """The next k peers of the deck, reshuffled (seeded) whenever it runs out."""
        dealt: list[AgentId] = []
        while len(dealt) < self.k:
            if not deck:
                deck.extend(p for p in self.others if p not in dealt)
                self._rng.shuffle(deck)
            dealt.append(deck.pop())
        return dealt

    def _send_delta(self, s: int, peer: AgentId, kind: Kind, out: Output, ids: bytes = b"") -> None:
        """Send ``peer`` the originals it is not known to hold (a pull goes even if there are none)."""
        st = self._slot(s)
        known = st.known.setdefault(peer, set())
        delta = tuple(m for m in st.held.values() if m.mac not in known and m.sender != peer)
        if not delta and kind is Kind.GOSSIP:
            return
        known.update(m.mac for m in delta)
        out.messages.append(self._signer.make(peer, kind, 0, s, NIL, payload=ids, proof=delta))

    def _on_pull(self, msg: Message, out: Output) -> None:
        """Take what the puller sent, then answer with what its list of ids lacks."""
        s = msg.slot
        self._absorb(s, msg.sender, msg.proof, out)
        ids = msg.payload
        if len(ids) % _ID:
            return
        # Its list is the truth about what it holds: pushes to it may have been lost.
        self._slot(s).known[msg.sender] = {ids[i : i + _ID] for i in range(0, len(ids), _ID)}
        self._send_delta(s, msg.sender, Kind.GOSSIP, out)

    # --- plumbing -------------------------------------------------------------------------------

    def _slot(self, s: int) -> _Slot:
        st = self._state.get(s)
        if st is None:
            st = self._state[s] = _Slot()
        return st

    def _arm(self) -> None:
        """The earliest push, pull or proposer deadline of any slot."""
        times: list[float] = []
        for s, st in self._state.items():
            if st.next_push is not None:
                times.append(st.next_push)
            if s == self.slot and s not in self._decided and st.started is not None:
                if st.next_pull is not None:
                    times.append(st.next_pull)
                if st.mine is None:
                    times.append(self._round_end(st))
        self._deadline = min(times) if times else None
