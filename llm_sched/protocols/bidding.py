"""Contract-net bidding (Smith, IEEE Trans. Computers 1980) committed by a Byzantine quorum vote.

Each slot is a job put out to tender in rounds; the announcer of round r is
``peers[(slot + r) % n]``. Normal case:

1. the announcer sends ANNOUNCE to the n-1 others;
2. each agent asks the application for its bid (a value and a score) and, if its own
   feasibility check passes, sends a signed BID to the announcer;
3. with every bid in (or q of them and then ``collect`` longer), the announcer sends AWARD: the
   best valid bid (highest score, ties to the lower agent id) with all the bids it weighed, so
   anyone can redo the choice;
4. the award is the proposal of a two-phase quorum vote, exactly as in
   :mod:`llm_sched.protocols.weighted` with equal weights: WEIGHTED-VOTE to the announcer,
   LOCK-CERT, COMMIT-VOTE, COMMIT-CERT, with q = byzantine_quorum(n) accepts per phase.

Messages per decision: 7(n-1) (n=4: 21, n=5: 28, n=7: 42, n=10: 63), seven message delays.

An honest voter rejects an award that does not carry q distinct signed bids of the round, that is
not the best valid bid among them and its own bid, or whose value fails its feasibility check; a
rejected award leaves the round to time out (or fail at once, ROUND-FAILED) and the next announcer
tenders again. A Byzantine announcer can thus leave out at most n - q bids, and a left-out bidder
with a better bid refuses the award. A value locked in an earlier round is re-awarded without a
new tender, carrying its lock certificate instead of bids, because once a value may have been
decided it must stay the one. Round changes cost what they cost in weighted voting (NEW-ROUND,
n(n-1)).

Fault model: Byzantine, up to f = floor((n-1)/3) agents (safety under any schedule, termination
after GST). Scores are self-reported: a Byzantine bidder can win with an inflated score, but only
with a value that passes every honest voter's feasibility check; invalid bids never win.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from llm_sched.protocols.messages import (
    BROADCAST,
    NIL,
    AgentId,
    KeyRing,
    Kind,
    Message,
    Output,
    Signer,
    Validate,
    Value,
    digest_of,
)
from llm_sched.protocols.weighted import WeightedConfig, WeightedCore, WeightedPersisted

Bid = Callable[[int], tuple[Value, float]]
"""The application's bid for a slot: the value it offers and how good it claims it is."""


@dataclass(frozen=True, slots=True)
class BiddingConfig:
    """Timers in simulated time units; ``quorum`` overrides q only to show a smaller one is unsafe."""

    base_timeout: float = 20.0
    max_backoff: int = 5
    collect: float = 4.0
    quorum: int | None = None


@dataclass(slots=True)
class _Tender:
    """One round's tender as this agent sees it."""

    key: tuple[int, int]  # (slot, round)
    bids: dict[AgentId, Message] = field(default_factory=dict)  # announcer: bids received
    mine: Message | None = None  # the bid this agent made
    awarded: bool = False


def bid_score(bid: Message) -> float | None:
    """A bid's score, or None when the payload is not a finite number."""
    try:
        score = float(bid.payload.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return score if math.isfinite(score) else None


class BiddingCore(WeightedCore):
    """One agent of contract-net bidding deciding slots 0 .. slots-1 in order."""

    PROPOSAL_KIND: ClassVar[Kind] = Kind.AWARD

    def __init__(
        self, node_id: AgentId, peers: Sequence[AgentId], slots: int, signer: Signer,
        keyring: KeyRing, bid: Bid, validate: Validate,
        config: BiddingConfig = BiddingConfig(), restore: WeightedPersisted | None = None,
    ) -> None:
        # Awards are voted on as in weighted voting with equal weights. (The announcer awards a
        # bid, so the proposal callback, a bid's value, only fills the base's slot.)
        voting = WeightedConfig.equal_weights(
            len(peers), config.base_timeout, config.max_backoff, config.collect, config.quorum
        )
        super().__init__(node_id, peers, slots, signer, keyring, lambda s: bid(s)[0], validate, voting, restore)
        self._bid_fn = bid
        self._tender_state = _Tender((-1, -1))

    # --- tendering ------------------------------------------------------------------------------

    def _tender(self) -> _Tender:
        """The current round's tender (a new one whenever the slot or round moved on)."""
        key = (self.slot, self.round)
        if self._tender_state.key != key:
            self._tender_state = _Tender(key)
        return self._tender_state

    def _open(self, out: Output) -> None:
        """Announcer: re-award a locked value, else put the job out to tender."""
        self._rs.opened = True
        lock = self._best
        if lock is not None:
            self._send_proposal(lock.value, lock.view, lock.messages, out)
            return
        self._broadcast(Kind.ANNOUNCE, self.round, self.slot, NIL, out)
        tender = self._tender()
        own = self._make_bid(BROADCAST)
        if own is not None:
            tender.bids[self.node_id] = tender.mine = own
        self._maybe_award(out)

    def _make_bid(self, to: AgentId) -> Message | None:
        """Our signed bid, if the application's bid passes our own feasibility check."""
        value, score = self._bid_fn(self.slot)
        if not math.isfinite(score) or not self._validate(self.slot, value):
            return None
        payload = repr(float(score)).encode()
        return self._signer.make(to, Kind.BID, self.round, self.slot, digest_of(value), value, payload)

    def _on_announce(self, msg: Message, out: Output) -> None:
        tender = self._tender()
        if msg.sender != self.coordinator(self.slot, self.round) or tender.mine is not None:
            return
        tender.mine = self._make_bid(msg.sender)
        if tender.mine is not None:
            out.messages.append(tender.mine)

    def _on_bid(self, msg: Message, out: Output) -> None:
        tender = self._tender()
        if not self._rs.opened or tender.awarded or self.coordinator(self.slot, self.round) != self.node_id:
            return
        if msg.value is None or digest_of(msg.value) != msg.digest or msg.proof:
            return
        tender.bids.setdefault(msg.sender, msg)
        self._maybe_award(out)

    def _maybe_award(self, out: Output) -> None:
        """Award once every agent bid; after q bids, wait ``collect`` for the rest."""
        tender = self._tender()
        if tender.awarded:
            return
        if len(tender.bids) == self.n:
            self._award(out)
        elif self._collect_at is None and self.quorum_met(self._weight(tender.bids)):
            self._collect_at = self._now + self.config.collect

    def _collected(self, out: Output) -> None:
        if not self._rs.opened:
            self._open(out)
        elif not self._tender().awarded:
            self._award(out)

    def _award(self, out: Output) -> None:
        tender = self._tender()
        tender.awarded = True
        bids = tuple(tender.bids[p] for p in sorted(tender.bids))
        best = self._best_bid(bids)
        if best is not None and best.value is not None:  # no valid bid: let the round time out
            self._send_proposal(best.value, -1, bids, out)

    def _best_bid(self, bids: Iterable[Message]) -> Message | None:
        """Highest score among the bids our feasibility check passes; ties to the lower agent id."""
        ranked = [(-score, b.sender, b) for b in bids if (score := self._valid_bid(b)) is not None]
        return min(ranked, key=lambda t: t[:2])[2] if ranked else None

    def _valid_bid(self, b: Message) -> float | None:
        """The bid's score if the bid is well formed and its value feasible, else None."""
        value = b.value
        if value is None or digest_of(value) != b.digest or not self._validate(self.slot, value):
            return None
        return bid_score(b)

    # --- judging an award -----------------------------------------------------------------------

    def _acceptable(self, msg: Message, justified: bool) -> bool:
        """A re-award of a locked value needs only feasibility; a fresh one must be the best bid."""
        value = msg.value
        assert value is not None
        if justified:
            return self._validate(self.slot, value)
        bids = msg.proof
        if not self._bids_ok(bids, msg.view):
            return False
        mine = self._tender().mine
        pool = list(bids) if mine is None or mine.sender in {b.sender for b in bids} else [*bids, mine]
        best = self._best_bid(pool)  # our own bid counts even if the announcer left it out
        return best is not None and best.digest == msg.digest

    def _bids_ok(self, bids: tuple[Message, ...], r: int) -> bool:
        """Signed bids of this round from distinct agents, q of them, so the choice was real."""
        senders = {b.sender for b in bids}
        if len(senders) != len(bids) or not senders <= set(self.peers):
            return False
        for b in bids:
            if (b.kind, b.slot, b.view) != (Kind.BID, self.slot, r) or b.proof or not self._keyring.verify(b):
                return False
        return self.quorum_met(self._weight(senders))

    _ROUND_BOUND: ClassVar[frozenset[Kind]] = frozenset(
        {Kind.AWARD, Kind.ANNOUNCE, Kind.BID, Kind.WEIGHTED_VOTE, Kind.COMMIT_VOTE}
    )
    _handlers: ClassVar[dict[Kind, Callable[[WeightedCore, Message, Output], None]]] = {
        **{k: h for k, h in WeightedCore._handlers.items() if k is not Kind.WEIGHTED_PROPOSAL},
        Kind.AWARD: WeightedCore._on_proposal,
        Kind.ANNOUNCE: _on_announce,  # type: ignore[dict-item]
        Kind.BID: _on_bid,  # type: ignore[dict-item]
    }
