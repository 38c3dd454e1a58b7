"""From settings to a ready :class:`LLMClient` (or ``None`` for heuristics), with record/replay.

``llm_session`` is what a run uses: it picks the provider, builds its transport, and wraps the run
in a recording or a replaying cassette when asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from llm_sched import __version__
from llm_sched.config import Settings
from llm_sched.errors import UserError
from llm_sched.events import EventBus
from llm_sched.llm.cassettes import cassette_path, recording, replaying
from llm_sched.llm.client import LLMClient, RetryPolicy
from llm_sched.llm.transport import Transport

RECORDABLE = ("sambastudio", "sambanova", "ollama")
# Replay rebuilds the recorded provider's real client; the host is never matched, so any will do.
REPLAY_HOST = "http://replay.invalid"
REPLAY_KEY = SecretStr("replay-has-no-key")


def build_transport(provider: str, settings: Settings, *, replay: dict[str, Any] | None = None) -> Transport:
    """The real client for ``provider``.

    With ``replay`` (a cassette's metadata) it gets the recorded model and endpoint path on a host
    that does not exist, and no key: the cassette answers, matching on method, path and body.
    """
    timeout = settings.llm_timeout
    model = replay.get("model") if replay else None
    endpoint = f"{REPLAY_HOST}{replay.get('endpoint_path', '')}" if replay else None
    if provider == "ollama":
        from llm_sched.llm.ollama_transport import OllamaTransport

        return OllamaTransport(endpoint or settings.effective_ollama_host, model or settings.ollama_model, timeout)
    if provider == "sambanova":
        from llm_sched.llm.sambanova_transport import SambaNovaTransport

        key = REPLAY_KEY if replay else settings.sambanova_api_key
        if key is None:
            raise UserError("SambaNova Cloud needs SAMBANOVA_API_KEY (run python main.py --setup-env)")
        return SambaNovaTransport(key, endpoint or settings.sambanova_api_base, model or settings.sambanova_model, timeout)
    if provider == "sambastudio":
        from llm_sched.llm.sambastudio_transport import SambaStudioTransport

        url = endpoint or settings.sambastudio_url
        key = REPLAY_KEY if replay else settings.sambastudio_api_key
        if not url or key is None:
            raise UserError("SambaStudio needs SAMBASTUDIO_URL and SAMBASTUDIO_API_KEY (run --setup-env)")
        return SambaStudioTransport(url, key, timeout)
    raise UserError(f"provider {provider!r} has no LLM client; choose one of {', '.join(RECORDABLE)}")


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings, for scrubbing logs and cassettes."""
    keys = (settings.sambanova_api_key, settings.sambastudio_api_key)
    return [k.get_secret_value() for k in keys if k is not None]


def _client(transport: Transport, settings: Settings, bus: EventBus | None, seed: int, source: str | None) -> LLMClient:
    return LLMClient(
        transport,
        RetryPolicy.from_settings(settings),
        concurrency=settings.llm_concurrency,
        bus=bus,
        seed=seed,
        replay_source=source,
    )


@contextmanager
def llm_session(
    settings: Settings,
    *,
    scenario: str,
    bus: EventBus | None = None,
    seed: int = 0,
    record: bool = False,
    recorded_how: str = "live endpoint",
    cassettes_dir: Path | None = None,
) -> Iterator[LLMClient | None]:
    """Yield the client a run uses, or ``None`` when agents should use their heuristics.

    ``replay`` serves the recorded provider's traffic from ``<scenario>-<provider>.yaml``; with
    ``record``, a real provider's traffic is written there. ``recorded_how`` goes into the metadata.
    """
    folder = cassettes_dir or settings.cassettes_dir
    provider = settings.resolved_provider()
    if provider == "heuristic":
        yield None
        return
    if provider == "replay":
        if record:
            raise UserError("--record needs a real provider (sambastudio, sambanova or ollama), not replay")
        with _replay(settings, scenario, folder, bus, seed) as client:
            yield client
        return
    client = _client(build_transport(provider, settings), settings, bus, seed, None)
    if not record:
        yield client
        return
    metadata = _recording_metadata(client, scenario, seed, recorded_how)
    with recording(cassette_path(folder, scenario, provider), metadata, secrets_of(settings)):
        yield client


@contextmanager
def _replay(settings: Settings, scenario: str, folder: Path, bus: EventBus | None, seed: int) -> Iterator[LLMClient]:
    recorded = settings.replay_provider
    path = cassette_path(folder, scenario, recorded)
    with replaying(path) as metadata:
        transport = build_transport(recorded, settings, replay=metadata)
        yield _client(transport, settings, bus, seed, str(path))


def _recording_metadata(client: LLMClient, scenario: str, seed: int, how: str) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "provider": client.provider,
        "model": client.transport.model,
        "endpoint_path": urlsplit(client.transport.endpoint).path.rstrip("/"),
        "seed": seed,
        "recorded_with": f"llm-sched {__version__}",
        "how": how,
    }
