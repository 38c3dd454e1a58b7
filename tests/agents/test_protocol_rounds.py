"""Each vote round of the scenario graph is decided by a real protocol core on the simulated network:
it decides exactly when a quorum of counted votes accepts, and its messages are counted."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import pytest

from llm_sched.cli import main
from llm_sched.engine.round import PROTOCOLS, decide_round
from llm_sched.protocols.messages import PlacementValue
from llm_sched.protocols.quorum import byzantine_quorum, weighted_quorum_met
from llm_sched.protocols.registry import get_method
from llm_sched.store.ledger import Ledger
from tests.agents.fixtures import build, job
from tests.store.faults import Place

VALUE = PlacementValue("j1", ("cpu-pool-0", "cpu-pool-1"), "")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n", [4, 5])
def test_the_protocol_decides_exactly_when_a_quorum_of_counted_votes_accepts(protocol: str, n: int) -> None:
    agents = [f"a{i}" for i in range(n)]
    # Every pattern of accept (True), reject (False) and no counted vote (None: no core runs).
    for pattern in product((True, False, None), repeat=n):
        accepts = {a: v for a, v in zip(agents, pattern, strict=True) if v is not None}
        ran = decide_round(protocol, agents, VALUE, accepts, f"test/{pattern}", {a: 1.0 for a in agents})
        assert ran.decided == (sum(1 for v in pattern if v) >= byzantine_quorum(n)), (protocol, pattern)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_unanimous_round_costs_the_protocols_normal_case_messages(protocol: str) -> None:
    agents = [f"a{i}" for i in range(5)]
    ran = decide_round(protocol, agents, VALUE, {a: True for a in agents}, "test/unanimous", {a: 1.0 for a in agents})
    normal_case = get_method(protocol).normal_case
    assert ran.decided and normal_case is not None and ran.messages == normal_case(5)


def test_reputation_weights_decide_a_weighted_round() -> None:
    agents = ["a0", "a1", "a2", "a3", "a4"]
    weights = {"a0": 1.0, "a1": 1.0, "a2": 1.0, "a3": 0.1, "a4": 0.1}  # two liars caught, little weight left
    accepts = {"a0": True, "a1": True, "a2": True, "a3": False, "a4": False}
    assert weighted_quorum_met(3.0, 3.2, 5)  # 3 of 5 agents, but q/n of the weight
    assert decide_round("weighted", agents, VALUE, accepts, "test/weights", weights).decided
    assert not decide_round("weighted", agents, VALUE, accepts, "test/equal", {a: 1.0 for a in agents}).decided


async def test_every_tally_of_the_graph_reports_its_protocol_run() -> None:
    graph, _, bus = build()
    d = await graph.decide(job("j0"))
    (tally,) = [e for e in bus.events if e.kind == "tally"]
    assert d.outcome == "commit" and tally.protocol == "pbft" and tally.protocol_decided and tally.passed
    assert tally.messages == 2 * 5 * 4  # PBFT's normal case at n = 5, from the network's count


def test_protocol_flag_runs_a_scenario_on_tendermint_and_the_run_records_it_for_a_resume(
        place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "healthy", "--provider", "heuristic", "--protocol", "tendermint"]) == 0
    out = capsys.readouterr().out
    assert "protocol messages (counted)" in out and "tendermint" in out
    with Ledger.open(place.ledger) as ledger:
        (run,) = ledger.runs()
    assert run.config["protocol"] == "tendermint"
    events = place.events(run.run_id)
    assert {e["protocol"] for e in events if e["kind"] == "tally"} == {"tendermint"}
    assert main(["--runs", "--protocol", "pbft"]) == 2
    assert "--protocol does not go with --runs" in capsys.readouterr().err


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    from tests.store.faults import isolated_place

    return isolated_place(tmp_path, monkeypatch)


def test_a_run_killed_under_protocol_tendermint_resumes_on_tendermint_to_the_uninterrupted_end(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    from typing import Any

    from llm_sched.core.events import comparable, read_jsonl
    from llm_sched.orchestration.graph import ConsensusGraph
    from llm_sched.orchestration.runner import resume_scenario, run_scenario
    from llm_sched.orchestration.scenarios import with_protocol
    from tests.store.faults import Died

    scenario = with_protocol(place.scenario("byzantine"), "tendermint")
    whole = run_scenario(scenario, place.settings())
    original = ConsensusGraph._choose

    def dying(graph: ConsensusGraph, s: Any) -> Any:
        if s["job"].id == "b-04":
            raise Died
        return original(graph, s)

    with monkeypatch.context() as patch:
        patch.setattr(ConsensusGraph, "_choose", dying)
        with pytest.raises(Died):
            run_scenario(scenario, place.settings())
    killed = max(r.run_id for r in place.runs_stored() if r.run_id != whole.run_dir.name)
    resumed = resume_scenario(killed, place.settings(), place.loader())  # the file says nothing of tendermint
    events = [comparable(e) for e in read_jsonl(resumed.run_dir / "events.jsonl")]
    assert {e["protocol"] for e in events if e["kind"] == "tally"} == {"tendermint"}
    assert events == [comparable(e) for e in read_jsonl(whole.run_dir / "events.jsonl")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_silent_first_leader_costs_the_protocol_a_second_round(protocol: str) -> None:
    agents = [f"p{i}" for i in range(5)]
    value = PlacementValue("j-1", ("p1:2",), "")
    everyone = {a: True for a in agents}
    assert decide_round(protocol, agents, value, everyone, "rounds").rounds == 1
    silent = decide_round(protocol, agents, value, everyone, "rounds", byzantine={"p0": ("silent", True)})
    assert silent.decided and silent.rounds == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_leader_that_flips_its_vote_or_alters_its_proposal_costs_a_view_change(protocol: str) -> None:
    agents = [f"p{i}" for i in range(5)]
    value = PlacementValue("j-1", ("p1:2",), "")
    everyone = {a: True for a in agents}
    honest = decide_round(protocol, agents, value, everyone, "rounds")
    for lie in ("vote-against", "alter"):
        led = decide_round(protocol, agents, value, everyone, "rounds", byzantine={"p0": (lie, True)})
        assert led.decided and led.rounds == 2 and led.messages > honest.messages, lie
    # Not leading, a flipper's votes name a lie: the four honest agents decide in the first round.
    follows = decide_round(protocol, agents, value, everyone, "rounds", byzantine={"p3": ("vote-against", True)})
    assert follows.decided and follows.rounds == 1


def test_simulated_agents_count_protocol_rounds_per_decision() -> None:
    from llm_sched.sim.resilience_metrics import measure
    from llm_sched.sim.simulate import SyntheticSetup, run_scenario
    from llm_sched.sim.workload import WorkloadSpec

    honest = SyntheticSetup(workload=WorkloadSpec(jobs=20))
    silent = SyntheticSetup(workload=WorkloadSpec(jobs=20), byzantine=1, behaviour="silent")
    assert measure(run_scenario(honest, "agents", 1)).rounds_per_decision == 1.0
    assert measure(run_scenario(silent, "agents", 1)).rounds_per_decision > 1.0  # its turns as leader
    assert measure(run_scenario(honest, "easy", 1)).rounds_per_decision == 0.0
