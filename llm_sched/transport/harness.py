"""Run one consensus schedule and check it: agreement, validity, termination after healing.

A :class:`Schedule` names a protocol, n agents, the Byzantine agents and their behaviours, the
network's faults and a number of slots. :func:`run_schedule` builds the cores, drives them on a
:class:`~llm_sched.transport.network.Network`, and returns a :class:`RunResult` whose
``violations`` list is empty when no two honest agents decided differently, every decided value
passed the application's check and was proposed by someone, and no agent changed its mind.
:func:`random_schedule` draws a small random schedule from a seed, for the randomized tests, and
:func:`sweep` runs many of them (in worker processes) and summarizes.

Protocols: ``pbft`` and ``tendermint`` face up to f Byzantine agents; the crash-fault ``raft`` and
``multipaxos`` face up to f_c = floor((n-1)/2) crashes instead, some of them for good (agents that
are down at the end are not expected to finish). Termination is checked after the faults heal.

After the network heals. The heal is ``FaultPlan.heal_time``: the latest of GST (drops, duplicates
and corruption end), the end of every partition and timed link fault, and every crash and restart;
from then on every message between agents that are up arrives, within Δ = :func:`delay_bound` (a
slow agent stays slow: its penalty is part of Δ). Random schedules run in partial synchrony with Δ
known after GST (``Schedule.known_delay``): the cores' timeouts are derived from Δ
(:func:`configs_for`), as a deployment sets them from its network, so a view or round that starts
after the heal has the time it needs. The BFT bound is counted from the view (round) already in
progress at the heal, whose timers and messages may predate it and which is not counted: PBFT
decides every slot in a view at most f+1 after the highest view an honest replica had reached at
the heal (the views of the commit certificates, wherever they were learned); Tendermint decides
every height in a round at most f+1 after the highest round an honest process had reached in it at
the heal (0 for a height not yet started). Crash-fault protocols instead report how long each wait
for a leader took (:func:`election_times`), in base election timeouts.

Byzantine behaviours wrap honest cores (they reuse the honest logic and rewrite what it sends,
:class:`ByzantineCore`): ``silent`` sends nothing; ``forge`` adds to each message a copy claiming
another sender, which fails the MAC check; ``alter`` makes proposals carry another value (valid or
not, the same for every copy of a message slot); ``vote-against`` makes votes name another or an
invalid value; ``mixed`` draws one of those, or honesty, per message. What counts as a proposal or a
vote, per protocol family:

- PBFT, Tendermint, Raft, Multi-Paxos: ``alter`` rewrites PRE-PREPARE, PROPOSAL, APPEND-ENTRIES and
  ACCEPT; ``vote-against`` makes PREPARE, COMMIT, PREVOTE and PRECOMMIT name the digest of the lie.
- Weighted voting, bidding, negotiation: ``alter`` rewrites WEIGHTED-PROPOSAL, AWARD, OFFER and
  COUNTER, and BID with an inflated score besides (:func:`inflated_score`); ``vote-against`` flips
  WEIGHTED-VOTE (accepts what its check rejects, rejects what it accepts) and makes COMMIT-VOTE
  name the digest of the lie. A counter the agent later re-sends inside its NEW-ROUND is the
  rewritten one.
- Gossip: envelopes (GOSSIP, GOSSIP-PULL) carry signed originals; only the agent's own are
  rewritten (``alter``: its proposals carry the lie; ``vote-against``: its votes name the lie's
  digest), each re-signed with its own key, and so is the envelope (and a pull's list of what it
  holds names the rewritten ones). An original is rewritten once, the first time it goes out, and
  travels the same in every later envelope (under ``mixed`` too): anything else would be
  equivocation, which gossip is documented not to survive.

Lies are the agent's own signed messages, so they pass the MAC check; only ``forge`` fails it. The
lies come from a :class:`LieSource` (:class:`PoolAwards` here, the agents' hooks in experiments).
``equivocate`` is a split brain (:class:`SplitBrainCore`): the agent runs one honest core per half
of the honest agents, each proposing and voting for a different value, and colluding Byzantine
agents keep their halves consistent through a shared side channel.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from llm_sched.agents.pool_agents import Award, PoolAgent, PoolView, award, placement_of
from llm_sched.protocols.bidding import bid_score
from llm_sched.protocols.core_base import CoreWrapper, StableLeaderConfig
from llm_sched.protocols.messages import (
    AgentId,
    Core,
    KeyRing,
    Kind,
    Message,
    Output,
    PlacementValue,
    Propose,
    Signer,
    Value,
    digest_of,
)
from llm_sched.protocols.multipaxos import MultiPaxosCore
from llm_sched.protocols.pbft import PbftConfig, PbftCore
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum, crash_f, majority
from llm_sched.protocols.raft import RaftCore
from llm_sched.protocols.tendermint import TendermintConfig, TendermintCore
from llm_sched.protocols.weighted import ACCEPT, REJECT
from llm_sched.transport.network import Accounting, Crash, FaultPlan, LinkModel, Network, Partition

PROTOCOLS = ("pbft", "tendermint")  # Byzantine fault tolerant
CRASH_PROTOCOLS = ("raft", "multipaxos")  # crash fault tolerant: schedules crash agents instead of corrupting them
BEHAVIOURS = ("silent", "equivocate", "forge", "alter", "vote-against", "mixed")
# Messages that carry a value someone proposes (a bid or a counter-proposal is a proposal too).
_PROPOSALS = (
    Kind.PRE_PREPARE, Kind.PROPOSAL, Kind.APPEND, Kind.ACCEPT,  # PBFT, Tendermint, Raft, Multi-Paxos
    Kind.WEIGHTED_PROPOSAL, Kind.AWARD, Kind.OFFER, Kind.COUNTER, Kind.BID,  # weighted, bidding, negotiation
    Kind.GOSSIP_PROPOSAL,  # gossip: only ever inside envelopes
)
# Votes that name a value by its digest. (Weighted voting's WEIGHTED-VOTE names the proposal and
# says accept or reject: vote-against flips that instead.)
_VOTES = (Kind.PREPARE, Kind.COMMIT, Kind.PREVOTE, Kind.PRECOMMIT, Kind.COMMIT_VOTE)
# Signed originals an agent sends inside other messages as well as, or instead of, on their own,
# and the messages that carry them: each of the agent's own is rewritten once, the same everywhere.
_ORIGINALS = (Kind.COUNTER, Kind.GOSSIP_PROPOSAL, Kind.GOSSIP_VOTE)
_CARRIERS = (Kind.NEW_ROUND, Kind.GOSSIP, Kind.GOSSIP_PULL)
_TAG = 32  # bytes of an HMAC-SHA256 tag: an original's id in a gossip pull's list


# --- the application the tests agree on: the simulator's resource agents -------------------------

# The shared state of the machine every agent sees (pool_agents.PoolView): five pools of whole
# nodes. Pools 0, 2 and 4 can hold every job of the harness (2 to 5 nodes), pool 1 jobs of up to 4
# nodes and pool 3 only jobs of 2: the agents of pools 1 and 3 then propose the award of all bids.
POOLS = PoolView(
    free=(6, 4, 8, 2, 5),
    size=(8, 6, 12, 4, 8),
    completed=(5, 2, 9, 1, 3),
    killed=(1, 0, 2, 1, 0),
    specialisation=(0.9, 0.6, 1.0, 0.4, 0.7),
    side=(0, 1, 2, 3, 4),
)


class PoolAwards:
    """Job awards by the simulator's resource agents (:mod:`llm_sched.agents.pool_agents`) on the
    shared pools ``view`` (:data:`POOLS`): slot s awards job ``job-s`` of :meth:`need` nodes.

    Agent a speaks for the pool agent of pool a mod k. Its honest proposal is its own pool's award
    when that pool can hold the whole job, else the award of every pool's bid (:func:`award`, ranked
    by recomputed scores), with a reason naming the agent: valid, but not the same for every agent.
    A value is valid when it names the slot's job and is a reject (placement None) or node shares
    ``"pN:c"`` on distinct pools of the view, each within the pool's free nodes, that add up to the
    job's need. Proposals, lies and checks are computed once per slot (and per share tuple).
    """

    __slots__ = ("view", "agents", "_awards", "_lies", "_fit")

    def __init__(self, view: PoolView = POOLS, run: str = "harness") -> None:
        self.view = view
        self.agents = tuple(PoolAgent(pool, run) for pool in range(len(view.free)))
        self._awards: dict[int, Award] = {}  # slot -> the award of every pool's bid
        self._lies: dict[tuple[int, bool], Value] = {}  # (slot, valid) -> alternative or invalid value
        self._fit: dict[tuple[str, ...], int] = {}  # node shares -> nodes they take (-1: they do not fit)

    @staticmethod
    def job(slot: int) -> str:
        return f"job-{slot}"

    @staticmethod
    def need(slot: int) -> int:
        """Nodes job ``job-s`` needs: 2, 3, 4, 5, 2, ..."""
        return 2 + slot % 4

    def award_of_all(self, slot: int) -> Award:
        """The award of the slot's job among every pool's bid."""
        done = self._awards.get(slot)
        if done is None:
            need = self.need(slot)
            bids = [b for b in (agent.bid(self.view, need) for agent in self.agents) if b is not None]
            done = self._awards[slot] = award(self.view, need, bids)
        return done

    def propose_for(self, agent: AgentId) -> Propose:
        """Agent ``agent``'s proposal function: honest, valid, but not the same as its peers'."""
        mine = self.agents[agent % len(self.agents)]
        made: dict[int, Value] = {}

        def propose(slot: int) -> Value:
            value = made.get(slot)
            if value is None:
                value = made[slot] = self._proposal(agent, mine, slot)
            return value

        return propose

    def _proposal(self, agent: AgentId, mine: PoolAgent, slot: int) -> Value:
        need, job = self.need(slot), self.job(slot)
        own = mine.bid(self.view, need)
        if own is not None and self.view.free[mine.pool] >= need:
            alloc, why = award(self.view, need, [own]), f"agent {agent}: its pool {mine.name} holds the job"
        else:
            alloc, why = self.award_of_all(slot), f"agent {agent}: the award of every pool's bid"
        if not alloc:
            return PlacementValue(job, None, f"agent {agent}: no pools can hold the job")
        return PlacementValue(job, placement_of(alloc)[1], why)

    def validate(self, slot: int, value: Value) -> bool:
        """Feasibility: the right job, and a reject or node shares that fit the shared state."""
        if not isinstance(value, PlacementValue) or value.job_id != f"job-{slot}":
            return False
        shares = value.placement
        if shares is None:
            return True
        if not isinstance(shares, tuple):
            return False
        taken = self._fit.get(shares)
        if taken is None:
            taken = self._fit[shares] = self._nodes(shares)
        return taken == self.need(slot)

    def _nodes(self, shares: tuple[str, ...]) -> int:
        """Nodes the shares take, or -1 when one is malformed, repeats a pool, names a pool the view
        does not have or takes more nodes than the pool has free (or none)."""
        free, pools, total = self.view.free, set(), 0
        for share in shares:
            if not isinstance(share, str):
                return -1
            pool, sep, count = share.partition(":")
            if not sep or pool[:1] != "p" or not pool[1:].isdecimal() or not count.isdecimal():
                return -1
            p, c = int(pool[1:]), int(count)
            if share != f"p{p}:{c}" or p >= len(free) or p in pools or not 0 < c <= free[p]:
                return -1
            pools.add(p)
            total += c
        return total

    def alternative(self, slot: int) -> Value:
        """A valid value no honest agent proposes: the job split over the two pools with the most
        free nodes (honest awards of these jobs take one pool)."""
        key = (slot, True)
        if key not in self._lies:
            need, free = self.need(slot), self.view.free
            first, second = sorted(range(len(free)), key=lambda p: (-free[p], p))[:2]
            split = ((first, (need + 1) // 2), (second, need // 2))
            self._lies[key] = PlacementValue(self.job(slot), placement_of(split)[1], "byzantine alternative")
        return self._lies[key]

    def invalid(self, slot: int) -> Value:
        """A value the feasibility check rejects: the whole job on the pool with the fewest free nodes
        when it cannot hold it (more nodes than free), else on a pool that does not exist."""
        key = (slot, False)
        if key not in self._lies:
            need, free = self.need(slot), self.view.free
            small = min(range(len(free)), key=lambda p: (free[p], p))
            pool = small if free[small] < need else len(free)
            self._lies[key] = PlacementValue(self.job(slot), (f"p{pool}:{need}",), "byzantine invalid")
        return self._lies[key]


AWARDS = PoolAwards()
"""The harness's application: one instance, shared by every core (its caches too)."""


# --- Byzantine behaviours ------------------------------------------------------------------------


class LieSource(Protocol):
    """Where a Byzantine agent's lies come from (:class:`PoolAwards`, or an experiment's agent hooks)."""

    def alternative(self, slot: int) -> Value:
        """A valid value for the slot that no honest agent proposes."""
        ...

    def invalid(self, slot: int) -> Value:
        """A value for the slot that the feasibility check rejects."""
        ...


def inflated_score(score: float | None) -> float:
    """The score a lying bidder claims: twice its honest one, and at least 2 (honest scores are in
    [0, 1]), so that its bid wins the tender if its value passes the voters' check."""
    return 2.0 * max(1.0, score if score is not None else 0.0)


class ByzantineCore(CoreWrapper):
    """An honest core whose outgoing messages are rewritten by a behaviour (see the module docstring)."""

    def __init__(self, inner: Core, behaviour: str, signer: Signer, peers: Sequence[AgentId],
                 app: LieSource, rng: random.Random) -> None:
        super().__init__(inner)
        self.behaviour = behaviour
        self._signer, self._peers, self._app, self._rng = signer, tuple(peers), app, rng
        self._lies: dict[tuple[Kind, int, int], Value] = {}  # one consistent lie per message slot
        # Our own originals (by the honest MAC, and by the MAC of what they became) -> what goes out.
        self._originals: dict[bytes, Message] = {}

    def _rewrite(self, out: Output) -> Output:
        sent: list[Message] = []
        for m in out.messages:
            behaviour = self.behaviour
            if behaviour == "mixed":
                behaviour = self._rng.choice(("honest", "silent", "forge", "alter", "vote-against"))
            sent += self._apply(behaviour, m)
        return Output(sent, out.decisions)

    def _apply(self, behaviour: str, m: Message) -> list[Message]:
        if behaviour == "silent":
            return []
        if m.kind in _ORIGINALS:  # sent on its own, and maybe again inside a carrier later
            m = self._original(m, behaviour)
        elif m.kind in _CARRIERS:
            m = self._carrier(m, behaviour)
        if behaviour == "forge":
            others = [p for p in self._peers if p not in (self.node_id, m.receiver)]
            fake = replace(m, sender=self._rng.choice(others), digest=digest_of(self._lie(m)), mac=b"")
            return [m, self._signer.seal(fake)]  # sealed with our own key: receivers reject it
        if behaviour == "alter" and m.kind in _PROPOSALS and m.kind not in _ORIGINALS and m.value is not None:
            return [self._lying_proposal(m)]
        if behaviour == "vote-against" and m.kind in _VOTES:
            return [self._signer.seal(replace(m, digest=digest_of(self._lie(m))))]
        if behaviour == "vote-against" and m.kind is Kind.WEIGHTED_VOTE and m.payload in (ACCEPT, REJECT):
            return [self._signer.seal(replace(m, payload=REJECT if m.payload == ACCEPT else ACCEPT))]
        return [m]

    def _lying_proposal(self, m: Message) -> Message:
        """The proposal with the slot's lie for its value (a bid also claims an inflated score)."""
        lie = self._lie(m)
        payload = repr(inflated_score(bid_score(m))).encode() if m.kind is Kind.BID else m.payload
        return self._signer.seal(replace(m, value=lie, digest=digest_of(lie), payload=payload))

    def _original(self, m: Message, behaviour: str) -> Message:
        """One of our own originals as it goes out: rewritten by the behaviour in force the first
        time it goes out (``alter``: a proposal or counter carries the lie; ``vote-against``: a
        gossip vote names the lie's digest), then the same wherever it travels."""
        done = self._originals.get(m.mac)
        if done is not None:
            return done
        done = m
        if behaviour == "alter" and m.kind in _PROPOSALS and m.value is not None:
            done = self._lying_proposal(m)
        elif behaviour == "vote-against" and m.kind is Kind.GOSSIP_VOTE:
            done = self._signer.seal(replace(m, digest=digest_of(self._lie(m))))
        self._originals[m.mac] = self._originals[done.mac] = done
        return done

    def _carrier(self, m: Message, behaviour: str) -> Message:
        """A message carrying signed originals (a gossip envelope, a NEW-ROUND with our counter):
        our own originals in it rewritten as :meth:`_original` says, others' untouched; re-sealed
        if anything changed. A pull's list of what we hold names what our originals became."""
        proof = tuple(self._original(o, behaviour) if o.sender == self.node_id and o.kind in _ORIGINALS else o
                      for o in m.proof)
        payload = m.payload
        if m.kind is Kind.GOSSIP_PULL and len(payload) % _TAG == 0:
            ids = [payload[i : i + _TAG] for i in range(0, len(payload), _TAG)]
            payload = b"".join(self._originals[t].mac if t in self._originals else t for t in ids)
        if payload == m.payload and all(a is b for a, b in zip(proof, m.proof, strict=True)):
            return m
        return self._signer.seal(replace(m, proof=proof, payload=payload))

    def _lie(self, m: Message) -> Value:
        key = (m.kind, m.view, m.slot)
        if key not in self._lies:
            pick = self._rng.random() < 0.5
            self._lies[key] = self._app.invalid(m.slot) if pick else self._app.alternative(m.slot)
        return self._lies[key]


@dataclass(slots=True)
class Collusion:
    """The colluders' side channel: which honest agents see which world, and message tags."""

    world_of: dict[AgentId, int]
    tags: dict[bytes, int] = field(default_factory=dict)

    @classmethod
    def split(cls, honest: Sequence[AgentId], rng: random.Random) -> Collusion:
        order = list(honest)
        rng.shuffle(order)
        half = (len(order) + 1) // 2
        return cls({a: int(i >= half) for i, a in enumerate(order)})


class SplitBrainCore:
    """Equivocation: one honest core per world; each world's honest agents see only their core."""

    def __init__(self, node_id: AgentId, worlds: tuple[Core, Core], collusion: Collusion) -> None:
        self.node_id = node_id
        self.worlds, self.collusion = worlds, collusion

    def tick(self, now: float) -> Output:
        out = Output()
        for w, core in enumerate(self.worlds):
            out.extend(self._route(w, core.tick(now)))
        return out

    def step(self, msg: Message) -> Output:
        world = self.collusion.world_of.get(msg.sender, self.collusion.tags.get(msg.mac))
        out = Output()
        for w, core in enumerate(self.worlds):
            if world is None or world == w:
                out.extend(self._route(w, core.step(msg)))
        return out

    def next_deadline(self) -> float | None:
        times = [t for t in (c.next_deadline() for c in self.worlds) if t is not None]
        return min(times) if times else None

    def persisted(self) -> object:
        return self.worlds[0].persisted()

    def _route(self, w: int, out: Output) -> Output:
        kept = []
        for m in out.messages:
            receiver_world = self.collusion.world_of.get(m.receiver)
            if receiver_world is None:  # a fellow colluder: tell it which world this belongs to
                self.collusion.tags[m.mac] = w
                kept.append(m)
            elif receiver_world == w:
                kept.append(m)
        return Output(kept, [])


# --- schedules -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """One run: who is Byzantine and how, the network's faults, how many slots to decide."""

    protocol: str
    n: int
    slots: int
    seed: int
    byzantine: tuple[tuple[AgentId, str], ...] = ()
    faults: FaultPlan = FaultPlan()
    until: float = 20_000.0
    quorum: int | None = None
    fast_path: bool = False
    # Partial synchrony with a known bound: when set, the cores' timeouts are derived from the
    # delay bound after the heal, Δ = delay_bound(faults) (see configs_for).
    known_delay: bool = False

    @property
    def honest(self) -> tuple[AgentId, ...]:
        bad = {a for a, _ in self.byzantine}
        return tuple(a for a in range(self.n) if a not in bad)


@dataclass(slots=True)
class RunResult:
    """Outcome of one schedule: decisions of honest agents, accounting, checks."""

    schedule: Schedule
    decisions: dict[AgentId, dict[int, Value]]
    stats: Accounting
    history_hash: str
    violations: list[str]
    undecided: dict[AgentId, list[int]]
    views_after_heal: int  # PBFT views / Tendermint rounds used after the network healed
    end_time: float
    # Crash-fault protocols: per time a leader was needed, how long until one was established, in
    # base election timeouts (see election_times); empty for the BFT protocols.
    elections: list[float] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return not self.violations

    @property
    def terminated(self) -> bool:
        return not self.undecided

    @property
    def slowest_election(self) -> float:
        """The longest wait for a leader in this run, in base election timeouts (0 if none)."""
        return max(self.elections, default=0.0)

    @property
    def within_bound(self) -> bool:
        """Healing took at most f+1 views (PBFT) or rounds per height (Tendermint).

        Crash-fault protocols elect with randomized timers and have no such bound: always true.
        """
        if self.schedule.protocol in CRASH_PROTOCOLS:
            return True
        return self.views_after_heal <= byzantine_f(self.schedule.n) + 1


DELAY_QUANTILE = math.log(1_000)
"""Jitter is exponential, so no delay bound is absolute: Δ takes the jitter's 99.9th percentile."""


def delay_bound(faults: FaultPlan) -> float:
    """Δ, the message delay bound once the network has healed: the base delay, the slow-agent
    penalties of the slowest link and the jitter's 99.9th percentile (timed link faults and
    partitions are over by then; drops, duplicates and corruption stop at GST)."""
    slow = sorted((d for _, d in faults.slow), reverse=True)[:2]
    return faults.link.base_delay + sum(slow) + faults.link.jitter * DELAY_QUANTILE


def configs_for(s: Schedule) -> tuple[PbftConfig, TendermintConfig, StableLeaderConfig, StableLeaderConfig]:
    """The cores' configurations for a schedule.

    With ``known_delay`` (partial synchrony with Δ known after GST) every timeout is at least the
    multiple of Δ its step needs, and never below the defaults: a PBFT view (view change, new
    view, three phases) takes four message delays; a Tendermint proposal may reach a process two
    delays after it entered the round (skew, then delivery) and the remaining votes of a step two
    delays after the first q; a Raft or Multi-Paxos election (request, vote, first append) three,
    with a margin so that split votes stay rare. Heartbeats keep their ratio to the election timeout.
    """
    pbft, tm = PbftConfig(fast_path=s.fast_path, quorum=s.quorum), TendermintConfig(quorum=s.quorum)
    leader = StableLeaderConfig(quorum=s.quorum)  # Raft's and Multi-Paxos's
    if not s.known_delay:
        return pbft, tm, leader, leader
    d = delay_bound(s.faults)
    pbft = replace(pbft, base_timeout=max(pbft.base_timeout, 4 * d))
    tm = replace(
        tm,
        timeout_propose=max(tm.timeout_propose, 3 * d),
        timeout_prevote=max(tm.timeout_prevote, 2 * d),
        timeout_precommit=max(tm.timeout_precommit, 2 * d),
        timeout_delta=max(tm.timeout_delta, d),
        sync_interval=max(tm.sync_interval, 6 * d),
    )
    election = max(leader.election_timeout, 4 * d)
    heartbeat = leader.heartbeat * election / leader.election_timeout
    leader = replace(leader, election_timeout=election, heartbeat=heartbeat)
    return pbft, tm, leader, leader


def election_timeout(s: Schedule) -> float:
    """The base election timeout the schedule's Raft or Multi-Paxos cores use (they share a config)."""
    _, _, paxos, raft = configs_for(s)
    return (raft if s.protocol == "raft" else paxos).election_timeout


def _build_core(s: Schedule, agent: AgentId, keyring: KeyRing, propose: Propose, restore: object | None) -> Core:
    app = AWARDS
    peers = tuple(range(s.n))
    signer = keyring.signer(agent)
    pbft, tm, paxos, raft = configs_for(s)
    if s.protocol == "pbft":
        return PbftCore(agent, peers, s.slots, signer, keyring, propose, app.validate, pbft, restore)  # type: ignore[arg-type]
    if s.protocol == "tendermint":
        return TendermintCore(agent, peers, s.slots, signer, keyring, propose, app.validate, tm, restore)  # type: ignore[arg-type]
    if s.protocol == "multipaxos":
        timers = random.Random(f"{s.seed}/paxos-timers/{agent}/{restore is not None}")
        return MultiPaxosCore(agent, peers, s.slots, signer, propose, timers, paxos, restore)  # type: ignore[arg-type]
    if s.protocol == "raft":
        timers = random.Random(f"{s.seed}/raft-timers/{agent}/{restore is not None}")
        return RaftCore(agent, peers, s.slots, signer, propose, timers, raft, restore)  # type: ignore[arg-type]
    raise ValueError(f"unknown protocol {s.protocol!r}")


def make_factory(s: Schedule, keyring: KeyRing) -> Callable[[AgentId, object | None], Core]:
    """The network's core factory for a schedule, Byzantine wrappers included."""
    app = AWARDS
    behaviours = dict(s.byzantine)
    rng = random.Random(f"{s.seed}/byzantine")
    collusion = Collusion.split(s.honest, rng)

    def factory(agent: AgentId, restore: object | None) -> Core:
        behaviour = behaviours.get(agent)
        if behaviour is None:
            return _build_core(s, agent, keyring, app.propose_for(agent), restore)
        if behaviour == "equivocate":
            worlds = (
                _build_core(s, agent, keyring, app.propose_for(agent), None),
                _build_core(s, agent, keyring, app.alternative, None),
            )
            return SplitBrainCore(agent, worlds, collusion)
        inner = _build_core(s, agent, keyring, app.propose_for(agent), restore)
        return ByzantineCore(inner, behaviour, keyring.signer(agent), range(s.n), app, rng)

    return factory


Leadership = tuple[int, AgentId] | None  # (term or ballot, leader) as one agent knows them


class _Watched(CoreWrapper):
    """A crash-fault core under observation: every change of whom it knows as leader is logged
    with the simulated time (the network ticks a core before every delivery, so the last tick's
    time is the time of the step). Its outputs go out unchanged."""

    def __init__(self, core: Core, log: list[tuple[float, AgentId, Leadership]]) -> None:
        super().__init__(core)
        self._log = log
        self._now, self._last = 0.0, cast(Leadership, None)

    def tick(self, now: float) -> Output:
        self._now = now
        return super().tick(now)

    def _rewrite(self, out: Output) -> Output:
        """Note a change of leader after each step or tick."""
        core = self.inner.inner if isinstance(self.inner, ByzantineCore) else self.inner
        now = core.leadership() if isinstance(core, (RaftCore, MultiPaxosCore)) else None
        if now != self._last:
            self._last = now
            self._log.append((self._now, self.node_id, now))
        return out


def _unwrap(core: object) -> object:
    return core.inner if isinstance(core, _Watched) else core


def run_schedule(s: Schedule) -> RunResult:
    """Run a schedule to its end (or until every honest agent decided every slot) and check it."""
    keyring = KeyRing(s.seed, range(s.n))
    proposed: dict[int, set[Value]] = {}

    def observe(m: Message) -> None:  # every value proposed, bid or countered, gossiped ones included
        for x in (m, *m.proof) if m.kind in (Kind.GOSSIP, Kind.GOSSIP_PULL) else (m,):
            if x.kind in _PROPOSALS and x.value is not None:
                proposed.setdefault(x.slot, set()).add(x.value)

    factory = make_factory(s, keyring)
    leaders: list[tuple[float, AgentId, Leadership]] = []
    if s.protocol in CRASH_PROTOCOLS:
        build = factory

        def factory(agent: AgentId, restore: object | None) -> Core:
            return _Watched(build(agent, restore), leaders)  # type: ignore[arg-type]

    net = Network(range(s.n), factory, keyring, s.seed, s.faults, observe)
    honest = s.honest
    heal = s.faults.heal_time
    at_heal: dict[AgentId, tuple[int, int]] = {}
    net.call_at(heal, lambda: at_heal.update({a: _position(net, s, a) for a in honest if net.is_up(a)}))

    def all_decided() -> bool:  # agents crashed for good are not expected to finish
        return net.now >= heal and all(len(net.decisions[a]) >= s.slots for a in honest if net.is_up(a))

    net.run(min(heal, s.until))  # nobody stops before the heal; a run all decided by then ends there
    if not all_decided():
        net.run(s.until, stop=all_decided)
    decisions = {a: dict(net.decisions[a]) for a in honest}
    violations = check_agreement(decisions) + check_validity(decisions, proposed, AWARDS.validate)
    violations += [f"integrity: agent {a} decided slot {slot} twice" for a, slot, _, _ in net.conflicts if a in honest]
    violations += check_durability(net, honest)
    undecided = {a: [x for x in range(s.slots) if x not in decisions[a]] for a in honest if net.is_up(a)}
    undecided = {a: xs for a, xs in undecided.items() if xs}
    used = _views_used(net, s, at_heal)
    elections: list[float] = []
    if s.protocol in CRASH_PROTOCOLS:
        timeout = election_timeout(s)
        elections = [t / timeout for t in election_times(leaders, s, net.now, bool(undecided))]
    return RunResult(s, decisions, net.stats, net.history_hash(), violations, undecided, used, net.now, elections)


def check_durability(net: Network, agents: Iterable[AgentId]) -> list[str]:
    """No agent that is up at the end lost or changed a decision it made (across restarts too)."""
    problems = []
    for a in agents:
        held = getattr(_unwrap(net.cores.get(a)), "decided", None)
        if not isinstance(held, dict):
            continue  # down at the end
        for slot, value in sorted(net.decisions[a].items()):
            if slot not in held:
                problems.append(f"durability: agent {a} lost its decision for slot {slot}")
            elif held[slot] != value:
                problems.append(f"durability: agent {a} changed its decision for slot {slot}")
    return problems


def election_times(
    log: Sequence[tuple[float, AgentId, Leadership]], s: Schedule, end: float, needed_at_end: bool
) -> list[float]:
    """How long each wait for a leader lasted, in simulated time.

    A leader is *established* while some agent leads a term (ballot) and a majority of the n agents,
    itself included and all of them up, know it as that term's leader. A leader is *needed* from the
    start and whenever the established one stops being so (it crashed, was cut off and lost its
    majority to a newer term, or too many of its followers crashed). A wait runs from that moment,
    or from the last fault transition during the wait if later (a crash or restart, a partition
    starting or healing, GST): that is, from the crash of the current leader or from the heal, to
    the moment a leader is established. A wait still open at the end of the run counts, up to the
    end, only if a leader was still needed then (an agent that is up had slots left).
    """
    f = s.faults
    quorum = s.quorum or majority(s.n)
    events = sorted([(t, i, a, v) for i, (t, a, v) in enumerate(log)] + [(c.at, -1, c.node, None) for c in f.crashes],
                    key=lambda e: (e[0], e[1]))  # a crashed agent knows no leader
    edges = [f.gst, *(p.start for p in f.partitions), *(p.end for p in f.partitions)]
    edges += [c.at for c in f.crashes] + [c.restart_at for c in f.crashes if c.restart_at is not None]
    edges += [lf.start for lf in f.link_faults] + [lf.end for lf in f.link_faults]
    known: dict[AgentId, Leadership] = {}
    waits: list[float] = []
    waiting_since: float | None = 0.0

    def established() -> bool:
        backers = Counter(v for v in known.values() if v is not None)
        return any(count >= quorum and known.get(v[1]) == v for v, count in backers.items())

    def clock(start: float, until: float) -> float:
        return max([start, *(t for t in edges if start <= t <= until)])

    for t, _, agent, view in events:
        known[agent] = view
        up = established()
        if waiting_since is not None and up:
            waits.append(t - clock(waiting_since, t))
            waiting_since = None
        elif waiting_since is None and not up:
            waiting_since = t
    if waiting_since is not None and needed_at_end:
        waits.append(end - clock(waiting_since, end))
    return waits


def _position(net: Network, s: Schedule, agent: AgentId) -> tuple[int, int]:
    """(slot in progress, view or round) of an honest agent, for the after-healing measure."""
    core = _unwrap(net.cores[agent])
    if isinstance(core, PbftCore):
        return (min((x for x in range(s.slots) if x not in core.decided), default=s.slots), core.view)
    if isinstance(core, RaftCore):
        return (0, core.term)
    if isinstance(core, MultiPaxosCore):
        return (0, core.promised // core.n)
    assert isinstance(core, TendermintCore)
    return (core.height, core.round)


def _views_used(net: Network, s: Schedule, at_heal: Mapping[AgentId, tuple[int, int]]) -> int:
    """Views (PBFT) or rounds (Tendermint, per height) that decisions took after the heal.

    PBFT: the highest view of a commit certificate by which an honest replica decided, minus the
    highest view an honest replica had reached (or was changing to) at the heal; a laggard's view
    changes after the others decided are not decisions and do not count. Raft: terms; Multi-Paxos:
    ballot rounds (informative only). Tendermint: per height decided after the heal, its decision
    round minus the highest round an honest process had reached in that height at the heal (0 for
    heights not started then).
    """
    cores = [_unwrap(net.cores[a]) for a in s.honest if a in net.cores]
    if not at_heal or not cores:
        return 0
    return max(0, _new_views(cores, at_heal))


def _new_views(cores: Sequence[Core], at_heal: Mapping[AgentId, tuple[int, int]]) -> int:
    """The measure of :func:`_views_used` per protocol (may be negative if a leader died)."""
    if isinstance(cores[0], PbftCore):  # the views of the certificates that decided
        views = [v for c in cores if isinstance(c, PbftCore) for v in c.decided_views.values()]
        return max(views, default=0) - max(v for _, v in at_heal.values())
    if isinstance(cores[0], RaftCore):  # terms (elections) after healing
        return max(c.term for c in cores if isinstance(c, RaftCore)) - max(v for _, v in at_heal.values())
    if isinstance(cores[0], MultiPaxosCore):  # ballot rounds after healing
        final = max(c.promised // c.n for c in cores if isinstance(c, MultiPaxosCore))
        return final - max(v for _, v in at_heal.values())
    start: dict[int, int] = {}
    for h, r in at_heal.values():
        start[h] = max(start.get(h, 0), r)
    first = min(h for h, _ in at_heal.values())
    used = 0
    for c in cores:
        assert isinstance(c, TendermintCore)
        for h, r in c.decided_rounds.items():
            if h >= first:
                used = max(used, r - start.get(h, 0))
    return used


def check_agreement(decisions: Mapping[AgentId, Mapping[int, Value]]) -> list[str]:
    """No two agents decided different values for one slot."""
    first: dict[int, tuple[AgentId, Value]] = {}
    problems = []
    for a in sorted(decisions):
        for slot, value in sorted(decisions[a].items()):
            b, other = first.setdefault(slot, (a, value))
            if other != value:
                problems.append(f"agreement: slot {slot}: agent {b} decided {other!r}, agent {a} {value!r}")
    return problems


def check_validity(
    decisions: Mapping[AgentId, Mapping[int, Value]],
    proposed: Mapping[int, set[Value]],
    validate: Callable[[int, Value], bool],
) -> list[str]:
    """Every decided value passes the application's check and was proposed by some agent."""
    problems = []
    for a in sorted(decisions):
        for slot, value in sorted(decisions[a].items()):
            if not validate(slot, value):
                problems.append(f"validity: agent {a} decided an invalid value for slot {slot}: {value!r}")
            elif value not in proposed.get(slot, set()):
                problems.append(f"validity: agent {a} decided a value nobody proposed for slot {slot}")
    return problems


# --- random schedules ----------------------------------------------------------------------------


def random_schedule(
    seed: int,
    protocol: str,
    *,
    extra_byzantine: int = 0,
    sizes: Sequence[int] = (4, 4, 5, 7),
    quorum_delta: int = 0,
    fast_path: bool = False,
    known_delay: bool = True,
) -> Schedule:
    """A small random schedule: f (+ ``extra_byzantine``) Byzantine agents, lossy links, a healing
    partition, maybe a crash and restart and a slow agent. ``quorum_delta`` shrinks the quorum;
    ``known_delay=False`` keeps the cores' default timeouts whatever the delays (see the module
    docstring)."""
    rng = random.Random(f"schedule/{protocol}/{seed}")
    n = rng.choice(list(sizes))
    if protocol in CRASH_PROTOCOLS:
        return _random_crash_schedule(rng, seed, protocol, n, quorum_delta, known_delay)
    k = min(n, byzantine_f(n) + extra_byzantine)
    bad = sorted(rng.sample(range(n), k))
    colluding = extra_byzantine > 0 or quorum_delta < 0 or rng.random() < 0.3
    byzantine = tuple((a, "equivocate" if colluding else rng.choice(BEHAVIOURS)) for a in bad)
    honest = [a for a in range(n) if a not in bad]
    quorum = byzantine_quorum(n) + quorum_delta if quorum_delta else None
    return Schedule(
        protocol=protocol, n=n, slots=rng.randint(1, 3), seed=seed, byzantine=byzantine,
        faults=_random_faults(rng, n, honest), quorum=quorum, fast_path=fast_path, known_delay=known_delay,
    )


def _random_crash_schedule(
    rng: random.Random, seed: int, protocol: str, n: int, quorum_delta: int, known_delay: bool
) -> Schedule:
    """Crash model: up to f_c = floor((n-1)/2) agents crash, some for good, on lossy links."""
    faults = _random_faults(rng, n, range(n))
    crashes = list(faults.crashes)
    for a in rng.sample(range(n), rng.randint(0, crash_f(n))):
        if any(c.node == a for c in crashes):
            continue
        at = rng.uniform(0.0, 150.0)
        crashes.append(Crash(a, at, at + rng.uniform(5.0, 100.0) if rng.random() < 0.5 else None))
    down_for_good = [c for c in crashes if c.restart_at is None]
    if len(down_for_good) > crash_f(n):
        crashes.remove(down_for_good[-1])
    quorum = majority(n) + quorum_delta if quorum_delta else None
    return Schedule(protocol=protocol, n=n, slots=rng.randint(1, 3), seed=seed,
                    faults=replace(faults, crashes=tuple(crashes)), quorum=quorum, known_delay=known_delay)


def _random_faults(rng: random.Random, n: int, honest: Sequence[AgentId]) -> FaultPlan:
    link = LinkModel(
        base_delay=1.0,
        jitter=rng.choice((0.0, 0.5, 2.0, 5.0)),
        drop=rng.choice((0.0, 0.0, 0.05, 0.2)),
        duplicate=rng.choice((0.0, 0.1)),
        corrupt=rng.choice((0.0, 0.05)),
    )
    partitions: tuple[Partition, ...] = ()
    if rng.random() < 0.5:
        start = rng.uniform(0.0, 40.0)
        members = list(range(n))
        rng.shuffle(members)
        cut = rng.randint(1, n - 1)
        groups = (frozenset(members[:cut]), frozenset(members[cut:]))
        partitions = (Partition(start, start + rng.uniform(10.0, 150.0), groups),)
    crashes: tuple[Crash, ...] = ()
    if honest and rng.random() < 0.3:
        at = rng.uniform(0.0, 80.0)
        crashes = (Crash(rng.choice(list(honest)), at, at + rng.uniform(5.0, 100.0)),)
    slow: tuple[tuple[AgentId, float], ...] = ()
    if rng.random() < 0.3:
        slow = ((rng.randrange(n), rng.uniform(1.0, 10.0)),)
    gst = rng.uniform(0.0, 120.0)
    return FaultPlan(link, gst, partitions, crashes, slow)


# --- many seeds ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SweepResult:
    """Summary of many random schedules of one protocol."""

    protocol: str
    runs: int = 0
    violating: list[tuple[int, str]] = field(default_factory=list)  # (seed, first violation)
    undecided: list[int] = field(default_factory=list)  # seeds where an honest agent did not finish
    slow_healing: list[int] = field(default_factory=list)  # seeds needing more than f+1 views/rounds
    views_after_heal: Counter[int] = field(default_factory=Counter)
    messages: int = 0
    seconds: float = 0.0
    # crash-fault protocols: per seed, the run's longest wait for a leader in base election timeouts
    slowest_elections: dict[int, float] = field(default_factory=dict)

    def elected_within(self, timeouts: float) -> float:
        """Share of runs in which every wait for a leader ended within ``timeouts`` election timeouts."""
        waits = self.slowest_elections.values()
        return sum(w <= timeouts for w in waits) / len(waits) if waits else 1.0


_Outcome = tuple[int, list[str], bool, int, bool, int, float]


def _run_seed(args: tuple[str, int, dict[str, object]]) -> _Outcome:
    protocol, seed, options = args
    r = run_schedule(random_schedule(seed, protocol, **options))  # type: ignore[arg-type]
    return (seed, r.violations[:1], r.terminated, r.views_after_heal, r.within_bound, r.stats.total_sent,
            r.slowest_election)


def sweep(
    protocol: str,
    seeds: Iterable[int],
    *,
    workers: int = 1,
    stop_at_violation: bool = False,
    **options: object,
) -> SweepResult:
    """Run :func:`random_schedule` for each seed (in ``workers`` processes) and summarize.

    ``options`` go to :func:`random_schedule` (``extra_byzantine``, ``quorum_delta``, ...).
    With ``stop_at_violation`` the sweep runs in this process and ends at the first violation.
    """
    started = time.perf_counter()
    result = SweepResult(protocol)
    jobs = [(protocol, seed, dict(options)) for seed in seeds]
    if workers > 1 and not stop_at_violation:
        with ProcessPoolExecutor(workers) as pool:
            outcomes: Iterable[_Outcome] = list(
                pool.map(_run_seed, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
            )
    else:
        outcomes = map(_run_seed, jobs)
    for seed, violations, terminated, used, within, messages, election in outcomes:
        result.runs += 1
        result.messages += messages
        result.views_after_heal[used] += 1
        if protocol in CRASH_PROTOCOLS:
            result.slowest_elections[seed] = election
        if not terminated:
            result.undecided.append(seed)
        if not within:
            result.slow_healing.append(seed)
        if violations:
            result.violating.append((seed, violations[0]))
            if stop_at_violation:
                break
    result.seconds = time.perf_counter() - started
    return result
