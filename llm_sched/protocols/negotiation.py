"""Negotiation by counter-proposals, committed by a Byzantine quorum vote, as a sans-IO core.

Each slot is negotiated in rounds; the proposer of round r is ``peers[(slot + r) % n]``. The
proposer sends OFFER(value); each agent answers its proposer with a signed WEIGHTED-VOTE accept
or, when it refuses the offer (infeasible by ``validate``, or not to its liking by ``prefer``), a
COUNTER carrying its own proposal. With q = byzantine_quorum(n) accepts the offer is committed by
the two-phase vote of
:mod:`llm_sched.protocols.weighted` (equal weights): LOCK-CERT, COMMIT-VOTE, COMMIT-CERT. Once
refusals leave no quorum, the proposer sends ROUND-FAILED with them; everyone moves to round r+1
and sends NEW-ROUND (with its counter and any lock) to all. The next proposer offers, in order:
the most recent locked value (with its lock certificate; a value that may be decided stays the
one), else the most supported counter of the last round that its own check accepts (ties to the
smaller digest, so every honest proposer breaks them alike), else its own proposal. From round
``round_limit`` on, offers are the application's agreed reject for the slot (a ``PlacementValue`` with
placement None and a reason), and honest agents accept nothing else without a lock certificate;
the reject is committed by the same quorum vote, so all honest agents agree on it too. A value
offered with a lock certificate needs only to pass ``validate``: a quorum already accepted it, and
refusing it for taste could leave a locked value that can neither commit nor be replaced.

Messages per decision, normal case (the first offer accepted): 5(n-1) (n=4: 15, n=5: 20, n=7:
30, n=10: 45). Each round that all the others answer with counters adds offer (n-1) + counters
(n-1) + ROUND-FAILED (n-1) + NEW-ROUND n(n-1) = (n-1)(n+3); one counter round then agreement in
round 1 costs (n-1)(n+8) (n=7: 90), and the agreed reject after ``round_limit`` such rounds
``round_limit``(n-1)(n+3) + 5(n-1).

Fault model: Byzantine, up to f = floor((n-1)/3) agents: safety under any schedule; termination
after GST, at the latest in the first round past ``round_limit`` with an honest proposer (one of
any f+1 consecutive rounds), which commits the reject or a locked value. A Byzantine proposer can
waste a round, and counters from Byzantine agents count as support like any other, so they can
steer which feasible value is tried next, never a value the honest agents' checks refuse.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from llm_sched.protocols.messages import (
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
from llm_sched.protocols.weighted import WeightedConfig, WeightedCore, WeightedPersisted


@dataclass(frozen=True, slots=True)
class NegotiationConfig:
    """``round_limit`` rounds of counter-proposals (0 .. limit-1), then the agreed reject.

    Timers in simulated time units; ``quorum`` overrides q only to show a smaller one is unsafe.
    """

    round_limit: int = 3
    base_timeout: float = 20.0
    max_backoff: int = 5
    collect: float = 4.0
    quorum: int | None = None


class NegotiationCore(WeightedCore):
    """One agent of the negotiation deciding slots 0 .. slots-1 in order."""

    PROPOSAL_KIND: ClassVar[Kind] = Kind.OFFER

    def __init__(
        self, node_id: AgentId, peers: Sequence[AgentId], slots: int, signer: Signer,
        keyring: KeyRing, propose: Propose, validate: Validate, reject: Propose,
        config: NegotiationConfig = NegotiationConfig(), restore: WeightedPersisted | None = None,
        prefer: Validate | None = None,
    ) -> None:
        # Offers are voted on as in weighted voting with equal weights.
        voting = WeightedConfig.equal_weights(
            len(peers), config.base_timeout, config.max_backoff, config.collect, config.quorum
        )
        super().__init__(node_id, peers, slots, signer, keyring, propose, validate, voting, restore)
        self.round_limit = config.round_limit
        self._reject_fn = reject
        self._prefer = prefer if prefer is not None else validate
        self._counters: dict[int, dict[AgentId, Message]] = {}  # round -> counter by sender
        self._counter_slot = self.slot
        self._my_counter: Message | None = None

    # --- offering -------------------------------------------------------------------------------

    def _open(self, out: Output) -> None:
        """Proposer: a locked value, else the best-supported counter, else our own (or the reject)."""
        self._rs.opened = True
        lock = self._best
        if lock is not None:
            self._send_proposal(lock.value, lock.view, lock.messages, out)
        elif self.round >= self.round_limit:
            self._send_proposal(self._reject_fn(self.slot), -1, (), out)
        else:
            adopted = self._most_supported()
            self._send_proposal(adopted if adopted is not None else self._propose_fn(self.slot), -1, (), out)

    def _most_supported(self) -> Value | None:
        """Of the latest earlier round with counters, the counter with the most support that our
        check accepts (ties to the smaller digest)."""
        rounds = [r for r in self._counters_now() if r < self.round]
        counters = self._counters_now()[max(rounds)] if rounds else {}
        support: Counter[str] = Counter()
        values: dict[str, Value] = {}
        for sender, m in counters.items():
            if m.value is not None and self._validate(self.slot, m.value):
                support[m.digest] += self.weights[sender]
                values[m.digest] = m.value
        if not support:
            return None
        best = min(support, key=lambda d: (-support[d], d))
        return values[best]

    # --- answering an offer ---------------------------------------------------------------------

    def _acceptable(self, msg: Message, justified: bool) -> bool:
        """Before the limit, feasible offers we like; from it on, only the agreed reject. A locked
        value (a quorum already accepted it) needs only to be feasible: liking is for new offers."""
        value = msg.value
        assert value is not None
        if justified:
            return self._committable(value)
        if msg.view >= self.round_limit:
            return self._is_reject(value)
        return self._validate(self.slot, value) and self._prefer(self.slot, value)

    def _committable(self, value: Value) -> bool:
        return self._is_reject(value) or self._validate(self.slot, value)

    def _is_reject(self, value: Value) -> bool:
        return digest_of(value) == digest_of(self._reject_fn(self.slot))

    def _respond(self, msg: Message, accept: bool, out: Output) -> None:
        """Accept, or counter with our own proposal (a plain reject when countering is pointless)."""
        own = None if accept or msg.view >= self.round_limit else self._propose_fn(self.slot)
        if own is None or digest_of(own) == msg.digest or not self._committable(own):
            super()._respond(msg, accept, out)
            return
        counter = self._signer.make(msg.sender, Kind.COUNTER, msg.view, self.slot, digest_of(own), own)
        out.messages.append(counter)
        self._my_counter = counter
        self._record_counter(counter)

    def _is_refusal(self, m: Message) -> bool:
        return m.kind is Kind.COUNTER or super()._is_refusal(m)

    def _on_counter(self, msg: Message, out: Output) -> None:
        rs = self._rs
        if msg.view != self.round or rs.proposal is None or msg.value is None or digest_of(msg.value) != msg.digest:
            return
        self._record_counter(msg)
        self._refused(msg, out)

    # --- what round changes carry ---------------------------------------------------------------

    def _report_extras(self) -> tuple[Message, ...]:
        """Our counter of the round just ended, so the next proposer can weigh it."""
        mine = self._my_counter
        return (mine,) if mine is not None and mine.slot == self.slot and mine.view == self.round - 1 else ()

    def _absorb_report(self, msg: Message) -> None:
        for m in msg.proof:
            if m.kind is Kind.COUNTER and m.sender == msg.sender and self._keyring.verify(m):
                self._record_counter(m)

    def _absorb_refusals(self, refusals: Iterable[Message]) -> None:
        for m in refusals:
            if m.kind is Kind.COUNTER:
                self._record_counter(m)

    def _record_counter(self, m: Message) -> None:
        if m.slot == self.slot and m.value is not None and digest_of(m.value) == m.digest and not m.proof:
            self._counters_now().setdefault(m.view, {}).setdefault(m.sender, m)

    def _counters_now(self) -> dict[int, dict[AgentId, Message]]:
        """Counters of the current slot (forgotten when the slot changes)."""
        if self._counter_slot != self.slot:
            self._counter_slot, self._counters = self.slot, {}
        return self._counters

    _ROUND_BOUND: ClassVar[frozenset[Kind]] = frozenset(
        {Kind.OFFER, Kind.COUNTER, Kind.WEIGHTED_VOTE, Kind.COMMIT_VOTE}
    )
    _handlers: ClassVar[dict[Kind, Callable[[WeightedCore, Message, Output], None]]] = {
        **{k: h for k, h in WeightedCore._handlers.items() if k is not Kind.WEIGHTED_PROPOSAL},
        Kind.OFFER: WeightedCore._on_proposal,
        Kind.COUNTER: _on_counter,  # type: ignore[dict-item]
    }
