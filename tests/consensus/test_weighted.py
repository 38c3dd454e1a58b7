"""Reputation-weighted voting: exact message counts, rounds, reputation, and seeded random schedules
with Byzantine agents on lossy links; plus runs beyond the fault bound, to show the checks can fail.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pytest

from llm_sched.protocols.messages import (
    AgentId,
    Core,
    KeyRing,
    Kind,
    Message,
    PlacementValue,
    Propose,
    Validate,
    digest_of,
)
from llm_sched.protocols.quorum import byzantine_f, byzantine_quorum
from llm_sched.protocols.weighted import WeightedConfig, WeightedCore

from . import helpers
from .helpers import APP, Driver, lossy

SIZES = (4, 5, 7, 10)
ROUND_KINDS = (Kind.WEIGHTED_PROPOSAL, Kind.WEIGHTED_VOTE, Kind.LOCK_CERT, Kind.COMMIT_VOTE, Kind.COMMIT_CERT)


class Liar(helpers.Liar):
    """``invalid`` proposes an infeasible value when coordinator."""

    MIXED = ("honest", "silent", "vote-against", "invalid")

    def _lie(self, behaviour: str, m: Message) -> Message | None:
        if behaviour == "invalid" and m.kind is Kind.WEIGHTED_PROPOSAL:
            lie = APP.invalid(m.slot)
            return self._signer.seal(replace(m, value=lie, digest=digest_of(lie)))
        return m


@dataclass
class Case(helpers.Case):
    """One run, with the agents' weights (reputations) and their checks and proposals."""

    weights: Mapping[AgentId, float] = field(default_factory=dict)
    fraction: float | None = None
    validate: Callable[[AgentId], Validate] = lambda _: APP.validate
    propose: Callable[[AgentId], Propose] = APP.propose_for


def cores(case: Case, ring: KeyRing) -> Callable[[AgentId, object | None, int], Core]:
    config = WeightedConfig(weights=case.weights, quorum_fraction=case.fraction)

    def core(a: AgentId, restore: object | None, world: int) -> WeightedCore:
        return WeightedCore(
            a, range(case.n), case.slots, ring.signer(a), ring, APP.alternative if world else case.propose(a),
            case.validate(a), config, restore,  # type: ignore[arg-type]
        )

    return core


DRIVER = Driver(cores, Liar, (Kind.WEIGHTED_PROPOSAL,))  # a decided value must have been proposed
run, checked = DRIVER.run, DRIVER.checked


# --- normal case ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_normal_case_is_five_times_n_minus_one(n: int) -> None:
    """Documented formula: proposal, votes, lock certificate, commit votes, commit certificate,
    each n-1 point-to-point messages: 5(n-1) per decision."""
    weights = {a: 1.0 + a / 10 for a in range(n)}  # unequal reputations change nothing here
    net = run(Case(n, weights=weights), stop_when_done=False)
    assert all(net.decisions[a] == {0: APP.propose_for(0)(0)} for a in range(n))
    assert net.stats.total_sent == 5 * (n - 1)
    assert [net.stats.sent[k] for k in ROUND_KINDS] == [n - 1] * 5
    assert net.stats.delivered == net.stats.sent
    assert max(net.decided_at[a][0] for a in range(n)) == 5.0  # five message delays


def test_counts_are_per_decision() -> None:
    net = run(Case(7, slots=4), stop_when_done=False)
    assert net.stats.total_sent == 4 * 5 * 6
    assert [net.decisions[3][s] for s in range(4)] == [APP.propose_for(s % 7)(s) for s in range(4)]


# --- rounds --------------------------------------------------------------------------------------


# Agent 0 places job-0 on pool 3, as the shared state allows; but pool 3's nodes have just been
# taken, and only pool 3's own agent, agent 3, knows.
ON_P3 = PlacementValue(APP.job(0), (f"p3:{APP.need(0)}",), "agent 0: p3 is free")
assert APP.validate(0, ON_P3) and ON_P3 != APP.propose_for(1)(0)


def _knows_p3_is_full(agent: AgentId) -> Validate:
    """Agent 3, pool 3's own agent, refuses the placement on p3; the others cannot tell and accept
    any placement that fits the shared state."""
    if agent != 3:
        return APP.validate
    return lambda slot, value: APP.validate(slot, value) and value != ON_P3


@pytest.mark.parametrize("n", SIZES)
def test_silent_coordinator_times_out_to_the_next(n: int) -> None:
    case = Case(n, byzantine={0: "silent"})
    net = run(case, stop_when_done=False)
    timeout = WeightedConfig().base_timeout
    for a in case.honest:
        assert net.decisions[a] == {0: APP.propose_for(1)(0)}  # round 1's coordinator is agent 1
        assert net.decided_at[a][0] > timeout
    assert net.stats.sent[Kind.NEW_ROUND] == (n - 1) ** 2  # the n-1 live agents announce round 1
    assert net.stats.sent[Kind.WEIGHTED_PROPOSAL] == n - 1  # only agent 1 proposed


def test_invalid_proposal_is_refused_and_the_next_coordinator_decides() -> None:
    case = Case(4, byzantine={0: "invalid"})
    net = run(case)
    assert all(net.decisions[a] == {0: APP.propose_for(1)(0)} for a in case.honest)
    assert net.stats.sent[Kind.LOCK_CERT] == 3  # only round 1 got as far as a lock


def test_refusals_end_the_round_without_waiting() -> None:
    """An honest coordinator whose proposal the others find infeasible: once the refusals leave
    no quorum it sends ROUND-FAILED with them, and round 1 starts before any timeout."""
    everyone_knows = lambda a: APP.validate if a == 0 else _knows_p3_is_full(3)
    proposes: Callable[[AgentId], Propose] = lambda a: (lambda s: ON_P3) if a == 0 else APP.propose_for(a)
    net = run(Case(4, validate=everyone_knows, propose=proposes))
    assert all(net.decisions[a] == {0: APP.propose_for(1)(0)} for a in range(4))
    assert net.stats.sent[Kind.ROUND_FAILED] == 3
    assert max(net.decided_at[a][0] for a in range(4)) < WeightedConfig().base_timeout


# --- reputation ----------------------------------------------------------------------------------

def test_a_low_reputation_liar_cannot_swing_the_vote() -> None:
    """Agent 0 proposes an infeasible placement and votes for it. Agents 1 and 2 cannot tell; agent
    3 refuses. With equal weights the liar's vote is the third of q = 3 and carries it; with the
    liar's reputation at 0.2 the same votes weigh 2.2 of the 2.4 needed, and the next coordinator's
    feasible proposal is decided instead."""
    liar_proposes: Callable[[AgentId], Propose] = lambda a: (lambda s: ON_P3) if a == 0 else APP.propose_for(a)
    equal = run(Case(4, validate=_knows_p3_is_full, propose=liar_proposes))
    assert all(equal.decisions[a] == {0: ON_P3} for a in range(4))
    weighted = run(Case(4, weights={0: 0.2}, validate=_knows_p3_is_full, propose=liar_proposes))
    assert all(weighted.decisions[a] == {0: APP.propose_for(1)(0)} for a in range(4))
    assert weighted.stats.sent[Kind.ROUND_FAILED] == 3  # the coordinator saw the quorum was gone


# --- random schedules ----------------------------------------------------------------------------


def random_weights(rng: random.Random, n: int, bad: list[AgentId]) -> dict[AgentId, float]:
    """Reputations in [0.5, 2]; faulty weight below a third of the total and the honest weight a
    quorum on its own (for safety and for termination), redrawn until both hold."""
    q = byzantine_quorum(n)
    while True:
        weights = {a: rng.uniform(0.5, 2.0) for a in range(n)}
        total, faulty = sum(weights.values()), sum(weights[a] for a in bad)
        if faulty < total / 3 and total - faulty >= q / n * total:
            return weights


def random_case(seed: int) -> Case:
    rng = random.Random(f"weighted/{seed}")
    n = rng.choice((4, 4, 5, 7))
    bad = sorted(rng.sample(range(n), byzantine_f(n)))
    behaviour = rng.choice(("silent", "vote-against", "invalid", "mixed", "equivocate"))
    honest = [a for a in range(n) if a not in bad]
    weights = random_weights(rng, n, bad) if rng.random() < 0.5 else {}
    return Case(n, rng.randint(1, 3), seed, {a: behaviour for a in bad}, lossy(rng, n, honest), weights=weights)


def test_random_schedules_agree_and_decide() -> None:
    """f Byzantine agents (faulty weight < 1/3), lossy links until GST, partitions, crashes."""
    runs, messages = 300, 0
    for seed in range(runs):
        messages += DRIVER.assert_agree_and_decide(random_case(seed), f"seed {seed}").stats.total_sent
    print(f"\nweighted voting: {runs} random schedules, {messages} messages, no violation")


# --- beyond the bound: the checks can fail -------------------------------------------------------


def equivocation_case(
    seed: int, n: int, colluders: list[AgentId], weight: float | None, fraction: float | None = None
) -> Case:
    rng = random.Random(f"weighted-attack/{seed}")
    weights = {a: weight for a in colluders} if weight is not None else {}
    honest = [a for a in range(n) if a not in colluders]
    faults = lossy(rng, n, honest, rough=False)
    return Case(n, 1, seed, {a: "equivocate" for a in colluders}, faults, weights=weights, fraction=fraction)


def test_faulty_weight_above_a_third_breaks_agreement() -> None:
    """n = 6, two colluders run one honest core per half of the honest agents. At weight 1.2 each
    they hold 2.4/6.4 = 37.5% of the weight and agreement breaks; at 0.9 (1.8/5.8 = 31%) the same
    attack never succeeds."""
    seed, violations = DRIVER.agreement_break(lambda s: equivocation_case(s, 6, [0, 1], 1.2), range(50))
    assert checked(equivocation_case(seed, 6, [0, 1], 1.2))[1] == violations  # replays from its seed
    assert DRIVER.first_violation(lambda s: equivocation_case(s, 6, [0, 1], 0.9), range(100)) is None


def test_a_quorum_below_q_breaks_agreement() -> None:
    """Equal weights, f equivocating colluders, and a quorum one agent short of q."""
    n = 7
    fraction = (byzantine_quorum(n) - 1) / n
    DRIVER.agreement_break(lambda s: equivocation_case(s, n, [0, 1], None, fraction), range(50))
    assert DRIVER.first_violation(lambda s: equivocation_case(s, n, [0, 1], None), range(50)) is None
