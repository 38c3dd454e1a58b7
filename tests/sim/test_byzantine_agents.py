"""Byzantine resource agents in the simulator: they lie through the engine like the scenarios' agents
(signed votes, a real protocol run), and up to f of them change no award, only what deciding costs."""

from __future__ import annotations

import pytest

from llm_sched.agents.pool_agents import POOL_BEHAVIOURS, Bid, PoolAgent, PoolView, award
from llm_sched.engine.awards import check_packed, pack
from llm_sched.sim.resilience import SimRun, simulate
from llm_sched.sim.resilience_metrics import measure
from llm_sched.sim.simulate import SyntheticSetup, byzantine_agents, prepare
from llm_sched.sim.workload import WorkloadSpec

SETUP = SyntheticSetup(agents=7, workload=WorkloadSpec(jobs=60))  # f = 2 of 7, q = 5


def run(byzantine: dict[int, str], seed: int = 1, hop_delay: float = 0.01, setup: SyntheticSetup = SETUP) -> SimRun:
    from dataclasses import replace

    setup = replace(setup, hop_delay=hop_delay)
    jobs, cluster, schedule = prepare(setup, seed)
    return simulate(jobs, cluster, setup.config("agents"), schedule, "test", byzantine)


def placements(r: SimRun) -> list[tuple[int, float, str]]:
    return [(o.job_id, o.start, o.where) for o in r.outcomes]


@pytest.mark.parametrize("behaviour", [b for b in POOL_BEHAVIOURS if b != "silent"])
def test_up_to_f_liars_change_no_award_and_every_award_is_certified(behaviour: str) -> None:
    honest = run({}, hop_delay=0.0)
    for liars in ({0: behaviour}, {2: behaviour, 5: behaviour}):
        lied = run(liars, hop_delay=0.0)
        assert placements(lied) == placements(honest), liars  # the same pools, the same starts
        packed = pack(lied.context, lied.public_keys, lied.awards)
        assert check_packed(packed, measure(lied).decisions) == (len(lied.awards), None)


def test_an_inflated_score_is_flagged_and_wins_nothing_the_recomputed_score_does_not_give() -> None:
    view = PoolView(free=[4, 4], size=[8, 8], completed=[0, 0], killed=[0, 3], specialisation=[1.0, 1.0], side=[0, 1])
    liar = PoolAgent(1, "test", "inflated_scores")
    bids = [PoolAgent(0, "test").bid(view, 2), liar.bid(view, 2)]
    assert bids[1] is not None and bids[1].score == 1.0 > view.score(1, 2)  # it claims a perfect score
    assert award(view, 2, [b for b in bids if b is not None]) == ((0, 2),)  # pool 0 is better on recomputation
    m = measure(run({3: "inflated_scores"}))
    assert m.overclaims > 0 and m.votes_refused == 0


def test_forged_and_equivocating_votes_are_refused_every_round() -> None:
    forged = measure(run({3: "forge"}))
    assert forged.votes_refused == forged.decisions * (SETUP.agents - 1)  # one forgery per other agent
    split = measure(run({3: "equivocate"}))
    assert split.votes_refused == split.decisions  # its two contradicting votes: one refusal a round


def test_a_faulty_agent_lies_in_the_protocol_as_its_behaviour_says() -> None:
    view = PoolView(free=[4, 4], size=[8, 8], completed=[0, 0], killed=[0, 3], specialisation=[1.0, 1.0], side=[0, 1])
    inflater = PoolAgent(1, "test", "inflated_scores")
    bids = [b for b in (PoolAgent(0, "test").bid(view, 2), inflater.bid(view, 2)) if b is not None]
    right = award(view, 2, bids)
    assert award(view, 2, bids, by_claims=True) == ((1, 2),) != right  # its claim ranks its own pool first
    assert inflater.protocol_fault(view, 2, bids, right) == ("alter", True)  # leading, it would propose its own
    assert inflater.protocol_fault(view, 2, bids, ((1, 2),)) is None  # the candidate it wants: nothing to lie about
    assert PoolAgent(0, "test").protocol_fault(view, 2, bids, right) is None
    assert PoolAgent(0, "test", "vote_flipping").protocol_fault(view, 2, bids, right) == ("vote-against", True)


def test_a_vote_flipper_votes_against_the_award_it_computes() -> None:
    view = PoolView(free=[4, 4], size=[8, 8], completed=[0, 0], killed=[0, 0], specialisation=[1.0, 0.3], side=[0, 1])
    bids = [Bid("p0", 0, view.score(0, 2)), Bid("p1", 1, view.score(1, 2))]
    right, wrong = award(view, 2, bids), ((1, 2),)
    flipper, honest = PoolAgent(1, "test", "vote_flipping"), PoolAgent(0, "test")
    for agent, candidate, accepts in ((honest, right, True), (honest, wrong, False), (flipper, right, False),
                                      (flipper, wrong, True)):
        (vote,) = agent.ballot(view, 2, bids, candidate, "7", 1, "d" * 64, ["p0", "p1"])
        assert vote.accept is accepts and len(vote.signature) == 128


def test_what_liars_cost_is_measured_on_the_network() -> None:
    honest = measure(run({}))
    silent = measure(run({0: "silent", 4: "silent"}))
    split = measure(run({0: "equivocate", 4: "equivocate"}))
    flipped = measure(run({0: "vote_flipping", 4: "vote_flipping"}))
    inflated = measure(run({0: "inflated_scores", 4: "inflated_scores"}))
    assert honest.decision_latency == pytest.approx(0.03)  # PBFT: three message delays of 10 ms
    # The first leader rotates with the decision number: 2 of 7 decisions start with a liar in the
    # lead. A silent leader proposes nothing: the view changes and the decision comes later.
    assert silent.decision_latency > honest.decision_latency
    # Equivocators run two cores, each heard by half of the honest agents; their signed votes
    # contradict each other and are refused every round, and every award still commits.
    assert split.votes_refused == split.decisions * 2 and split.completed == honest.completed
    # A vote flipper's votes name a lie, and when it leads it proposes as it votes ("no quorum" for a
    # sound award): the honest agents change the view, which costs messages and time.
    assert flipped.decision_latency > honest.decision_latency
    assert flipped.messages_per_decision > honest.messages_per_decision
    # An inflater that leads puts forward the award its own claims rank first; where that is not
    # the recomputed award, the honest agents refuse it and change the view.
    assert inflated.messages_per_decision > honest.messages_per_decision
    assert flipped.completed == inflated.completed == honest.completed  # every job still runs


def test_a_silent_agent_costs_liveness_when_honest_agents_fail() -> None:
    # 7 agents, q = 5: with the liar silent, two honest agents down leave 4 votes and nothing decides.
    setup = SyntheticSetup(agents=7, workload=WorkloadSpec(jobs=60), failures=SETUP.failures.__class__(rate=0.4))
    silent = measure(run({1: "silent"}, setup=setup))
    assert silent.undecided > 0 and silent.completed == silent.jobs


def test_byzantine_agents_are_chosen_per_seed_and_nested() -> None:
    from dataclasses import replace

    one, three = replace(SETUP, byzantine=1), replace(SETUP, byzantine=2)
    for seed in (1, 2, 3):
        assert set(byzantine_agents(one, seed)) < set(byzantine_agents(three, seed))
    assert {tuple(byzantine_agents(three, s)) for s in range(1, 9)} != {tuple(byzantine_agents(three, 1))}
    with pytest.raises(ValueError, match="unknown behaviour 'lying'"):
        PoolAgent(0, "test", "lying")
