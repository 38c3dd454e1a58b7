"""``--check``: readiness table, exit codes against a stand-in Ollama, and key redaction."""

from __future__ import annotations

import socket

from tests.conftest import Cli
from tests.standin import Reply, StandIn

FAKE_KEY = "sk-TESTKEY-0123456789-abcdefghij-SECRET"


def _closed_port() -> int:
    # Bind and release: nothing listens on the port afterwards, so connecting is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nothing_configured_runs_on_replay_and_exits_zero(cli: Cli) -> None:
    result = cli("--check")
    assert result.code == 0, result.text
    assert "A run would use replay" in result.out
    for item in ("Python", "pydantic", "langgraph", "sambastudio", "sambanova", "ollama", "heuristic"):
        assert item in result.out


def test_ollama_with_model_present_and_a_chat_endpoint_that_answers_is_ready(cli: Cli, standin: StandIn) -> None:
    standin.default = Reply.json({"ready": "yes"})
    cli.env.update(OLLAMA_HOST=standin.url, OLLAMA_MODEL="llama3.1:8b")
    result = cli("--check")
    assert result.code == 0, result.text
    assert "model llama3.1:8b is present" in result.out
    assert "A run would use ollama" in result.out
    # The model list, then one tiny chat request constrained to a schema.
    assert [r.path for r in standin.requests] == ["/api/tags", "/api/chat"]
    assert standin.requests[1].body["format"]["required"] == ["ready"]


def test_ollama_with_model_missing_exits_one_and_says_how_to_fix(cli: Cli, standin: StandIn) -> None:
    cli.env.update(OLLAMA_HOST=standin.url, OLLAMA_MODEL="qwen2.5:7b")
    result = cli("--check")
    assert result.code == 1
    assert "model qwen2.5:7b is not pulled" in result.out
    assert "ollama pull qwen2.5:7b" in result.out


def test_ollama_server_down_names_url_and_cause(cli: Cli) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    cli.env.update(OLLAMA_HOST=url)
    result = cli("--check")
    assert result.code == 1
    assert f"{url}/api/tags" in result.out
    assert "connection refused" in result.out


def test_silent_endpoint_times_out_after_two_seconds(cli: Cli) -> None:
    # A socket that listens but never answers: the connection opens, the reply never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        cli.env.update(OLLAMA_HOST=f"http://127.0.0.1:{silent.getsockname()[1]}")
        result = cli("--check")
    assert result.code == 1
    assert "no answer within 2 s" in result.out


def test_heuristic_never_fails_even_with_a_broken_endpoint_configured(cli: Cli) -> None:
    cli.env.update(OLLAMA_HOST=f"http://127.0.0.1:{_closed_port()}")
    result = cli("--check", "--provider", "heuristic")
    assert result.code == 0, result.text
    assert "A run would use heuristic" in result.out


def test_keys_never_appear_in_check_output(cli: Cli, standin: StandIn) -> None:
    cli.env.update({
        "SAMBANOVA_API_KEY": FAKE_KEY,
        "SAMBANOVA_API_BASE": standin.url + "/v1",
        "SAMBASTUDIO_URL": standin.url + "/api/v2/predict/generic/p/e",
        "SAMBASTUDIO_API_KEY": FAKE_KEY,
    })
    result = cli("--check")
    assert FAKE_KEY not in result.text
    assert FAKE_KEY[4:-4] not in result.text  # not even the middle of it
    assert "sk-T…CRET" in result.out  # the redacted form is what is shown
    # The probes did send the key: the stand-in saw it, the output did not.
    assert any(FAKE_KEY in str(r.headers) for r in standin.requests)


def test_explicitly_chosen_provider_without_settings_fails(cli: Cli) -> None:
    cli.env.update(LLM_SCHED_PROVIDER="sambanova")
    result = cli("--check")
    assert result.code == 1
    assert "SAMBANOVA_API_KEY" in result.out


def test_malformed_dotenv_is_reported_without_traceback(cli: Cli) -> None:
    (cli.cwd / ".env").write_text("OLLAMA_MODEL=ok\nthis line is not valid\n")
    result = cli("--check")
    assert result.code == 2
    assert ".env, line 2" in result.err
    assert "Traceback" not in result.text


def test_check_never_shows_credentials_in_an_endpoint_url(cli: Cli) -> None:
    cli.env.update(OPENAI_BASE_URL="http://user:SECRETPASS@127.0.0.1:9/v1?api_key=SECRETQ", OPENAI_MODEL="m",
                   OLLAMA_HOST="http://u:OLLAMAPASS@127.0.0.1:9")
    result = cli("--check")
    assert "127.0.0.1:9" in result.out
    for secret in ("SECRETPASS", "SECRETQ", "OLLAMAPASS"):
        assert secret not in result.text
