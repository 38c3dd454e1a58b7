"""A job interrupted inside the consensus graph continues from its last completed step."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llm_sched.agents.specialist import SpecialistAgent
from llm_sched.config import load_settings
from llm_sched.core.events import comparable
from llm_sched.orchestration.graph import ConsensusGraph
from llm_sched.orchestration.runner import resume_scenario, run_scenario
from llm_sched.orchestration.scenarios import load_scenario
from llm_sched.orchestration.summary import measured_removed
from llm_sched.store.ledger import Ledger


class Died(BaseException):
    """Stands for the process dying: nothing in the run catches a BaseException."""


def _settings(tmp: Path, provider: str = "heuristic") -> Any:
    return load_settings({"LLM_SCHED_PROVIDER": provider, "LLM_SCHED_RUNS_DIR": str(tmp)})


def _only_run(settings: Any) -> str:
    with Ledger.open(settings.ledger_path) as ledger:
        (run,) = ledger.runs()
        return run.run_id


@pytest.mark.parametrize("step", ["_choose", "_tally"])
def test_a_job_interrupted_after_proposals_does_not_ask_the_agents_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      step: str) -> None:
    settings = _settings(tmp_path / "crashed")
    scenario = load_scenario("byzantine", settings.scenarios_dir)
    reference = run_scenario(scenario, _settings(tmp_path / "reference"))
    victim = scenario.phases[-1].jobs[0].job().id
    original = getattr(ConsensusGraph, step)

    def dying(self: ConsensusGraph, s: Any) -> Any:
        if s["job"].id == victim:
            raise Died
        return original(self, s)

    monkeypatch.setattr(ConsensusGraph, step, dying)
    with pytest.raises(Died):
        run_scenario(scenario, settings)
    monkeypatch.setattr(ConsensusGraph, step, original)

    asked: Counter[tuple[str, str, int]] = Counter()
    propose, vote = SpecialistAgent.propose, SpecialistAgent.vote

    async def counting_propose(self: SpecialistAgent, job: Any) -> Any:
        asked["propose", job.id, 1] += 1
        return await propose(self, job)

    async def counting_vote(self: SpecialistAgent, job: Any, candidate: Any, round_no: int) -> Any:
        asked["vote", job.id, round_no] += 1
        return await vote(self, job, candidate, round_no)

    monkeypatch.setattr(SpecialistAgent, "propose", counting_propose)
    monkeypatch.setattr(SpecialistAgent, "vote", counting_vote)
    resumed = resume_scenario(_only_run(settings), settings, lambda n: load_scenario(n, settings.scenarios_dir))

    assert asked["propose", victim, 1] == 0  # the proposals came from the checkpoint
    if step == "_tally":
        assert asked["vote", victim, 1] == 0  # and so did the first round's votes
    assert asked["propose", "b-07", 1] > 0  # later jobs are asked as usual
    assert [comparable(e) for e in resumed.events] == [comparable(e) for e in reference.events]
    assert _decided(resumed.summary) == _decided(reference.summary)


def _decided(summary: dict[str, Any]) -> dict[str, Any]:
    return measured_removed(summary)
