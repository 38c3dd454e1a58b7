"""Campaigns whose agents are heuristic, LLM or hybrid: the settings, a tiny campaign whose model is
scripted (recorded to cassettes, then replayed on one and two workers), the refusals when no model
can answer, and one small campaign with the real local model, recorded then replayed."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from llm_sched.agents.pool_adviser import PROMPT_HASH, SCENARIO, PoolAdviser
from llm_sched.cli.campaign import run_campaign_cli
from llm_sched.core.records import Message
from llm_sched.errors import UserError
from llm_sched.evaluation import runner
from llm_sched.evaluation.campaign import CampaignResult, comparable_results, run_campaign
from llm_sched.evaluation.config import CampaignConfig, parse_campaign
from llm_sched.evaluation.design import base_scenario, configurations
from llm_sched.evaluation.output import campaign_dump
from llm_sched.llm.cassettes import CassetteInfo, RecordingTransport, now_utc
from llm_sched.llm.client import LLMClient, RetryPolicy
from llm_sched.llm.factory import LLMSource
from llm_sched.llm.transport import RawReply

BUDGET = 2
# 2 configurations (heuristic and hybrid agents) x 2 repetitions, 20 jobs, agents against EASY.
TINY: dict[str, Any] = {
    "name": "tiny-advice",
    "repetitions": 2,
    "seed": 3,
    "policies": ["agents", "easy"],
    "base": {"jobs": 20, "agents": 5, "nodes_per_agent": 4, "failure_rate": 0.3, "llm_budget": BUDGET},
    "dimensions": {"advice": ["heuristic", "hybrid"]},
    "model": {"provider": "local"},  # the scripted model stands in for it (build_adviser is replaced)
}
KEYS = ("advice-heuristic", "advice-hybrid")


def config(**changes: Any) -> CampaignConfig:
    return parse_campaign({**TINY, **changes}, "tiny-advice")


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))


def agents_metrics(folder: Path) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["config"], r["repetition"]): r["metrics"] for r in load(folder)["runs"] if r["policy"] == "agents"}


def problem(data: dict[str, Any]) -> str:
    with pytest.raises(UserError) as info:
        parse_campaign(data, "c.yaml")
    return str(info.value)


class LastOption:
    """A scripted model: always the last option it may choose (rarely the heuristic's first)."""

    provider, model, endpoint, max_concurrency = "scripted", "last-option", "memory", None

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        choice = schema.model_json_schema()["properties"]["choice"]
        letters = choice["items"]["enum"] if choice.get("type") == "array" else choice["enum"]
        answer: Any = list(reversed(letters)) if choice.get("type") == "array" else letters[-1]
        return RawReply(json.dumps({"choice": answer, "reason": "the last option"}), 10, 5)


def scripted_adviser(task: runner.Task) -> PoolAdviser:
    """What runner.build_adviser builds for a live provider, with the scripted model: its answers are
    recorded to the task's cassette when the adviser closes."""
    plan = task.model
    assert plan is not None and not plan.replay
    recorder = RecordingTransport(LastOption())
    info = CassetteInfo(provider="scripted", model="last-option", runtime="memory", recorded_at=now_utc(),
                        scenario=SCENARIO, seed=task.seed, prompt_template_hash=PROMPT_HASH)
    session = ExitStack()
    session.callback(recorder.save, Path(plan.cassette), info, force=True)
    return PoolAdviser(LLMClient(recorder, RetryPolicy(attempts=1, timeout=5)), task.scenario.advice,  # type: ignore[arg-type]
                       task.scenario.llm_budget, source=LLMSource(kind="live", provider="scripted", model="last-option"),
                       session=session)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> CampaignResult:
    """The tiny campaign on one worker, its hybrid agents asking the scripted model, recorded."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "build_adviser", scripted_adviser)
        return run_campaign(config(), tmp_path_factory.mktemp("advice") / "live", workers=1,
                            command="pytest tiny advice campaign")


# -- the settings ---------------------------------------------------------------------------------------


def test_an_unknown_advice_names_the_allowed_values() -> None:
    base = {"name": "t", "repetitions": 2, "dimensions": {"failure_rate": [0.1]}}
    message = problem({**base, "base": {"advice": "oracle"}})
    assert "c.yaml: invalid campaign: base.advice: Input should be 'heuristic', 'llm' or 'hybrid' (got 'oracle')" \
        in message
    message = problem({**base, "dimensions": {"advice": ["heuristic", "gpt"]}})
    assert "dimensions.advice.1: Input should be 'heuristic', 'llm' or 'hybrid' (got 'gpt')" in message
    assert "dimensions.advice: 'llm' is listed twice" in problem({**base, "dimensions": {"advice": ["llm", "llm"]}})


def test_a_negative_or_non_integer_budget_is_refused() -> None:
    base = {"name": "t", "repetitions": 2, "dimensions": {"failure_rate": [0.1]}}
    assert "base.llm_budget: Input should be greater than or equal to 0 (got -1" in \
        problem({**base, "base": {"llm_budget": -1}})
    assert "base.llm_budget: Input should be a valid integer (got True" in problem({**base, "base": {"llm_budget": True}})
    assert parse_campaign({**base, "base": {"llm_budget": 0}}).base.llm_budget == 0  # the heuristic decides all


def test_the_model_block_names_a_provider_and_cassettes_only_for_replay() -> None:
    base = {"name": "t", "repetitions": 2, "dimensions": {"advice": ["llm"]}}
    assert "model.provider: Input should be 'local', 'openai'" in problem({**base, "model": {"provider": "gpt"}})
    assert "model: cassettes is the folder a replay reads: give it with provider: replay" in \
        problem({**base, "model": {"provider": "local", "cassettes": "old/cassettes"}})
    assert "model.seed: unknown field" in problem({**base, "model": {"provider": "local", "seed": 1}})


def test_heuristic_campaigns_store_the_configuration_they_stored_before_the_advice_existed() -> None:
    plain = parse_campaign({"name": "t", "repetitions": 2, "dimensions": {"failure_rate": [0.1]}})
    dump = campaign_dump(plain)
    assert "model" not in dump and "advice" not in dump["dimensions"]
    assert "advice" not in dump["base"] and "llm_budget" not in dump["base"]
    assert parse_campaign(dump) == plain
    dump = campaign_dump(config())
    assert dump["model"] == {"provider": "local", "cassettes": None} and dump["base"]["llm_budget"] == BUDGET
    assert dump["dimensions"]["advice"] == ["heuristic", "hybrid"] and parse_campaign(dump) == config()


def test_the_advice_dimension_is_one_configuration_per_value_around_the_base() -> None:
    configs = configurations(config(dimensions={"advice": ["heuristic", "hybrid", "llm"], "failure_rate": [0.1]}))
    assert [(c.key, c.tick, c.scenario.advice) for c in configs] == [
        ("failure_rate-10%", "10%", "heuristic"), ("advice-heuristic", "heuristic", "heuristic"),
        ("advice-hybrid", "hybrid", "hybrid"), ("advice-llm", "LLM", "llm")]
    assert configs[2].label == f"hybrid agents (model on close calls, at most {BUDGET} calls per run)"
    assert {c.scenario.llm_budget for c in configs} == {BUDGET}
    assert base_scenario(config(base={"advice": "llm", "llm_budget": 7}).base).config("agents").advice == "llm"


# -- the tiny campaign with a scripted model -----------------------------------------------------------


def test_hybrid_agents_ask_the_model_within_the_budget_and_heuristic_agents_never(recorded: CampaignResult) -> None:
    metrics = agents_metrics(recorded.folder)
    assert sorted(metrics) == [(k, r) for k in KEYS for r in (0, 1)]
    for r in (0, 1):
        assert metrics["advice-heuristic", r]["llm_calls"] == metrics["advice-heuristic", r]["llm_choices"] == 0
        hybrid = metrics["advice-hybrid", r]
        assert 0 < hybrid["llm_calls"] <= BUDGET and hybrid["llm_choices"] == hybrid["llm_calls"]
    assert any(metrics["advice-hybrid", r]["llm_fallbacks"] > 0 for r in (0, 1))  # a budget spent
    assert all(r["metrics"]["llm_calls"] == 0 for r in load(recorded.folder)["runs"] if r["policy"] == "easy")
    # One cassette per task whose agents asked the model, none for the heuristic ones.
    assert sorted(p.name for p in (recorded.folder / "cassettes").iterdir()) == [
        "advice-hybrid-r0-hybrid.yaml", "advice-hybrid-r1-hybrid.yaml"]
    model = load(recorded.folder)["run_info"]["model"]
    assert model["provider"] == "local" and model["given"] == "model.provider" and model["llm_budget"] == BUDGET
    assert model["sources"] == ["the live scripted model last-option"] and model["runs"] == 2
    assert model["llm_calls"] == sum(metrics["advice-hybrid", r]["llm_calls"] for r in (0, 1))


def test_the_report_names_the_advice_the_budget_and_where_the_answers_came_from(recorded: CampaignResult) -> None:
    report = recorded.report.read_text(encoding="utf-8")
    assert "- Agents' advice: the advice dimension's hybrid agents let a model choose the award" in report
    assert f"at most {BUDGET} model calls per agents run (the budget)" in report
    assert f"  - agents' advice: heuristic, hybrid (at most {BUDGET} model calls per agents run" in report
    assert "### Agents' advice (who chooses the award)" in report and "![Agents' advice" in report
    assert "Agents' advice (who chooses the award): agents' mean wait was heuristic " in report
    row = next(line for line in report.splitlines() if line.startswith("| the model's answers"))
    assert "answers from the live scripted model last-option (recorded to the output folder's cassettes/" in row
    assert "No Byzantine agent rewrites the model's answer" in row and "signed votes only" in row
    assert "nan" not in report.lower()


def test_a_replayed_campaign_gives_the_same_results_on_one_and_two_workers(recorded: CampaignResult,
                                                                          tmp_path: Path) -> None:
    replay = config(model={"provider": "replay", "cassettes": str(recorded.folder / "cassettes")})
    one = run_campaign(replay, tmp_path / "one", workers=1, command="pytest tiny advice campaign")
    two = run_campaign(replay, tmp_path / "two", workers=2, command="pytest tiny advice campaign")
    assert comparable_results(load(one.folder)) == comparable_results(load(two.folder))
    rows = [[line for line in r.report.read_text().splitlines() if line.startswith("| the model's answers")]
            for r in (one, two)]
    assert rows[0] == rows[1] and "cassettes recorded from the live scripted model last-option, replayed" in rows[0][0]
    assert agents_metrics(one.folder) == agents_metrics(recorded.folder)  # the scripted answers, replayed
    for folder in (one.folder, two.folder):  # each folder now holds the cassettes it replayed
        assert sorted(p.name for p in (folder / "cassettes").iterdir()) == [
            "advice-hybrid-r0-hybrid.yaml", "advice-hybrid-r1-hybrid.yaml"]
    model = load(two.folder)["run_info"]["model"]
    assert model["provider"] == "replay" and model["replayed_from"] == str(recorded.folder / "cassettes")
    assert model["sources"] == ["cassettes recorded from the live scripted model last-option, replayed"]


# -- no model, no campaign ---------------------------------------------------------------------------


def test_llm_agents_without_a_model_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UserError) as info:
        run_campaign(config(model={"provider": "heuristic"}), out, workers=1, command="pytest")
    assert str(info.value).startswith("model.provider is heuristic, but the hybrid agents (1 configuration, "
                                      "e.g. advice-hybrid) need a model: set model.provider to a live provider")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as info:
        run_campaign(config(model={"provider": "replay", "cassettes": str(empty)}), out, workers=1, command="pytest")
    message = str(info.value)
    assert message.startswith(f"model.cassettes: no cassette {empty / 'advice-hybrid-r0-hybrid.yaml'} for the hybrid "
                              "agents of configuration advice-hybrid, repetition 0 (and 1 more missing)")
    assert "\n" not in message and not out.exists()
    # Heuristic agents need no model, whatever the provider.
    heuristic = config(dimensions={"advice": ["heuristic"]}, model={"provider": "heuristic"})
    assert run_campaign(heuristic, out, workers=1, command="pytest").tasks == 2
    assert "model" not in load(out)["run_info"] and not (out / "cassettes").exists()


def test_the_command_line_refuses_it_in_one_line_with_exit_2(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "no-model.yaml"
    file.write_text(json.dumps({**TINY, "model": {"provider": "heuristic"}}), encoding="utf-8")
    assert run_campaign_cli(str(file), str(tmp_path / "out"), False, 1, None) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model.provider is heuristic, but the hybrid agents") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# -- the real local model (SmolLM2-135M by llama.cpp): a handful of calls -------------------------------


def test_the_local_model_records_a_campaign_that_replays_to_the_same_results(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the local extra (llama-cpp-python) is not installed")
    # One configuration (LLM agents, at most 3 calls per run) x 2 repetitions (the least a campaign
    # has), 12 jobs, agents against EASY: at most 6 calls of the model.
    small = {**TINY, "name": "local-llm", "base": {**TINY["base"], "jobs": 12, "llm_budget": 3},
             "dimensions": {"advice": ["llm"]}, "model": {"provider": "local"}}
    live = run_campaign(parse_campaign(small), tmp_path / "live", workers=1, command="pytest local model")
    cassettes = sorted(p.name for p in (live.folder / "cassettes").iterdir())
    assert cassettes == ["advice-llm-r0-llm.yaml", "advice-llm-r1-llm.yaml"]
    metrics = agents_metrics(live.folder)
    assert all(0 < m["llm_calls"] <= 3 for m in metrics.values()), metrics
    assert load(live.folder)["run_info"]["model"]["sources"][0].startswith("the live local model SmolLM2")
    again = {**small, "model": {"provider": "replay", "cassettes": str(live.folder / "cassettes")}}
    replayed = run_campaign(parse_campaign(again), tmp_path / "replayed", workers=1, command="pytest local model")
    assert agents_metrics(replayed.folder) == metrics
    assert load(replayed.folder)["run_info"]["model"]["sources"][0].startswith(
        "cassettes recorded from the live local model SmolLM2")
