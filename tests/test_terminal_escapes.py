"""Model and server text never reaches the terminal raw: no escape sequence (ESC, CSI, OSC), no C1
control, no other C0 control but tab and newline, whether it came in an answer, inside a JSON string,
in an error body or in a model list, in a run, in ``--check`` or in an error message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest

from llm_sched.config import load_settings
from llm_sched.core.records import CallContext, Message
from llm_sched.llm.client import LLMClient, RetryPolicy
from llm_sched.llm.factory import build_transport
from llm_sched.llm.probes import ProbeResult
from llm_sched.safe_text import one_line, printable
from llm_sched.ui.console import safe
from tests.conftest import Cli
from tests.standin import Reply, RequestRecord, StandIn
from tests.test_endpoint_limits import Pick

MODEL = "llama3.1:8b"
# A window-title change (OSC ... BEL), clear screen (CSI 2J), an 8-bit CSI, a DCS string, a carriage
# return and a backspace: each would act on a terminal that printed it raw.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\x1bP+q\x1b\\\r\x08"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
KEY = "sk-" + "escape" + "Z9" * 12  # assembled: a literal key-shaped string would trip the secret scan


def controls_in(text: str) -> list[str]:
    return sorted({f"\\x{ord(c):02x}" for c in CONTROL.findall(text)})


def valid_for(schema: dict[str, Any]) -> dict[str, Any]:
    """A valid answer to a per-call schema: the middle of a numeric enum, the first of any other."""
    answer: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if "enum" in prop:
            answer[name] = prop["enum"][len(prop["enum"]) // 2] if prop.get("type") == "number" else prop["enum"][0]
        elif prop.get("type") == "string":
            answer[name] = "fits the job"
        elif prop.get("type") in ("number", "integer"):
            answer[name] = prop.get("minimum", 0)
        elif prop.get("type") == "boolean":
            answer[name] = True
    return answer


def hostile_model() -> Any:
    """Answers in turn: escapes in the raw text around valid JSON, escapes inside a JSON string (which
    fails the schema and is shown as the raw answer), and an HTTP 500 whose body holds escapes."""
    turn = itertools.count()

    def answer(rec: RequestRecord) -> Reply:
        valid = valid_for(rec.body["format"])
        kind = next(turn) % 3
        if kind == 0:
            return Reply.text(f"{HOSTILE} {json.dumps(valid)} {HOSTILE}")
        if kind == 1:
            return Reply.json({**valid, "reasoning": f"fits {HOSTILE}"})
        return Reply.status(500, body=f"upstream failed {HOSTILE}")

    return Reply.dynamic(answer)


def test_printable_is_the_consoles_sanitizer() -> None:
    for text in (HOSTILE, "plain\ttext\non two lines", "\x00\x7f\x80\x85\x9f\xa0é", ""):
        assert printable(text) == safe(text)
    assert not controls_in(printable(HOSTILE)) and "pwned" in printable(HOSTILE)  # shown, not obeyed


def test_a_probe_detail_is_one_printable_line() -> None:
    detail = ProbeResult(False, f"has: model-{HOSTILE}\nsecond line").detail
    assert not controls_in(detail) and "\n" not in detail


def test_one_line_keeps_the_words_and_drops_the_breaks() -> None:
    assert one_line("a\n b\t\tc\r\n") == "a b c"


def test_a_call_error_from_a_hostile_body_is_scrubbed_and_printable() -> None:
    with StandIn(models=[MODEL]) as server:
        server.default = Reply.status(400, body=f"bad request {HOSTILE} Authorization: Bearer {KEY} " + "x" * 5000)
        settings = load_settings({"OLLAMA_HOST": server.url}, environ={})
        client = LLMClient(build_transport("ollama", settings), RetryPolicy(attempts=1, timeout=5))
        answer = asyncio.run(client.structured([Message(role="user", content="pick")], Pick,
                                               context=CallContext(agent="a", step="proposal")))
    error = answer.record.error or ""
    assert error.startswith("client: HTTP 400: bad request \\x1b]0;pwned\\x07")
    assert not controls_in(error)
    assert KEY not in error and KEY[:12] not in error  # scrubbed whole before the cut


def test_no_control_character_reaches_the_terminal_in_a_run(cli: Cli) -> None:
    with StandIn(models=[MODEL]) as server:
        server.default = hostile_model()
        # One attempt a call: a 500 is the call's outcome, and its error is shown.
        cli.env.update(OLLAMA_HOST=server.url, OLLAMA_MODEL=MODEL, LLM_SCHED_TIMEOUT="5", LLM_SCHED_MAX_ATTEMPTS="1")
        # --interactive --verbose: every prompt, raw answer and call error is shown in a panel.
        result = cli("--interactive", "--scenario", "healthy", "--provider", "ollama", "--verbose", "--no-pause",
                     timeout=120)
        answered = [r for r in server.requests if r.method == "POST"]
    assert result.code == 0, result.text
    assert len(answered) >= 3  # every kind of hostile answer was given
    shown = " ".join(result.out.split())
    assert "\\x1b]0;pwned\\x07" in shown  # escapes in the raw answer, shown made visible
    assert "\\u001b]0;pwned" in shown  # escapes inside a JSON string, shown as the model wrote them
    assert "server: HTTP 500: upstream failed \\x1b]0;pwned" in shown  # an error body, scrubbed and visible
    assert controls_in(result.out + result.err) == []


def test_no_control_character_reaches_the_terminal_from_check(cli: Cli) -> None:
    with StandIn(models=[f"{MODEL}", f"evil-{HOSTILE}"]) as server:
        server.answer_probes = False
        server.default = Reply.status(500, body=f"chat broke {HOSTILE}")
        cli.env.update(OLLAMA_HOST=server.url, OLLAMA_MODEL=MODEL, LLM_SCHED_TIMEOUT="2")
        result = cli("--check")
    assert result.code == 1
    assert "chat broke" in result.out
    assert controls_in(result.out + result.err) == []


@pytest.mark.parametrize("model", ["not-pulled:7b"])
def test_no_control_character_reaches_the_terminal_in_a_start_up_error(cli: Cli, model: str) -> None:
    # The model list names the server's models in the error message: they are the server's text.
    with StandIn(models=[f"evil-{HOSTILE}"]) as server:
        cli.env.update(OLLAMA_HOST=server.url, OLLAMA_MODEL=model, LLM_SCHED_TIMEOUT="2")
        result = cli("--scenario", "healthy", "--provider", "ollama")
    assert result.code == 2
    assert f"{model} is not pulled" in result.err and "evil-" in result.err
    assert controls_in(result.out + result.err) == []
