"""From settings to a ready :class:`LLMClient` (or ``None`` for heuristics), with record and replay.

:func:`llm_session` is what a run uses: it picks the provider, checks at the start that a live one can
be reached (a run never discovers halfway that its model was never there), builds its transport,
and, when asked, records the model's answers to a cassette or serves them from one. It yields an
:class:`LLMSession` whose ``source`` says where the answers come from, for the banner, the events and
the summary (ARCHITECTURE.md, principle 9).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llm_sched import __version__
from llm_sched.config import MODEL_PROVIDERS, Settings
from llm_sched.errors import UserError
from llm_sched.events import EventBus
from llm_sched.llm.cassettes import CassetteInfo, RecordingTransport, now_utc, open_replay, refuse_existing
from llm_sched.llm.client import Breaker, LLMClient, RetryPolicy
from llm_sched.llm.transport import Transport
from llm_sched.probes import public_url
from llm_sched.scrub import Scrubber


class LLMSource(BaseModel):
    """Where a run's answers come from: a live model, a cassette (recorded from what), or heuristics."""

    model_config = ConfigDict(frozen=True)

    kind: str  # "live", "replay" or "heuristic"
    provider: str
    model: str | None = None
    detail: str = ""  # one line for the banner
    cassette: dict[str, Any] | None = None  # the cassette's metadata, when replaying


@dataclass
class LLMSession:
    """The client a run asks (None: heuristics), where its answers come from, and the recorder."""

    client: LLMClient | None
    source: LLMSource
    recorder: RecordingTransport | None = None


async def _no_sleep(_seconds: float) -> None:
    """Replay does not wait out recorded backoffs: the answers are on disk."""


def build_transport(provider: str, settings: Settings) -> Transport:
    """The real client for ``provider`` with the given settings."""
    timeout = settings.llm_timeout
    if provider == "local":
        from llm_sched.llm.local_transport import LocalTransport

        return LocalTransport(local_model(settings))
    if provider == "openai":
        from llm_sched.llm.openai_transport import OpenAITransport

        if not settings.openai_base_url or not settings.openai_model:
            raise UserError("the openai provider needs OPENAI_BASE_URL and OPENAI_MODEL (run python main.py --setup-env)")
        return OpenAITransport(settings.openai_base_url, settings.openai_model, settings.openai_api_key, timeout)
    if provider == "ollama":
        from llm_sched.llm.ollama_transport import OllamaTransport

        return OllamaTransport(settings.effective_ollama_host, settings.ollama_model, timeout)
    if provider == "sambanova":
        from llm_sched.llm.sambanova_transport import SambaNovaTransport

        if settings.sambanova_api_key is None:
            raise UserError("SambaNova Cloud needs SAMBANOVA_API_KEY (run python main.py --setup-env)")
        return SambaNovaTransport(settings.sambanova_api_key, settings.sambanova_api_base, settings.sambanova_model,
                                  timeout)
    if provider == "sambastudio":
        from llm_sched.llm.sambastudio_transport import SambaStudioTransport

        if not settings.sambastudio_url or settings.sambastudio_api_key is None:
            raise UserError("SambaStudio needs SAMBASTUDIO_URL and SAMBASTUDIO_API_KEY (run --setup-env)")
        return SambaStudioTransport(settings.sambastudio_url, settings.sambastudio_api_key, timeout)
    raise UserError(f"provider {provider!r} has no LLM client; choose one of {', '.join(MODEL_PROVIDERS)}")


def local_model(settings: Settings) -> Any:
    """The process's one local model (see :mod:`llm_sched.llm.local_transport`)."""
    import os

    from llm_sched.llm.local_transport import default_model_path, load_model

    path = settings.local_model or default_model_path()
    return load_model(path, settings.local_threads or os.cpu_count() or 1, settings.local_context)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings, for scrubbing logs and cassettes."""
    keys = (settings.sambanova_api_key, settings.sambastudio_api_key, settings.openai_api_key)
    return [k.get_secret_value() for k in keys if k is not None]


def _client(transport: Transport, settings: Settings, bus: EventBus | None, seed: int, agents: int,
            source: str | None = None, **kwargs: Any) -> LLMClient:
    return LLMClient(transport, RetryPolicy.from_settings(settings), concurrency=settings.concurrency_for(agents),
                     bus=bus, seed=seed, replay_source=source, scrub=Scrubber(secrets_of(settings)),
                     breaker=Breaker(settings.llm_breaker_failures, settings.llm_breaker_cooldown),
                     deadline_s=settings.llm_run_deadline, **kwargs)


@contextmanager
def llm_session(
    settings: Settings,
    *,
    scenario: str,
    bus: EventBus | None = None,
    seed: int = 0,
    agents: int = 1,
    record_to: Path | None = None,
    force: bool = False,
    allow_fallback: bool = False,
    cassette: Path | None = None,
    recording_metadata: dict[str, Any] | None = None,
    probe: bool = True,
) -> Iterator[LLMSession]:
    """The LLM a run uses, and where its answers come from.

    ``replay`` serves ``cassette``; with ``record_to``, a live provider's answers are written there
    when the block ends without error (never over an existing file unless ``force``). A live provider
    that cannot be reached stops the run with a :class:`UserError` naming it and the fix, unless
    ``allow_fallback``: then the agents use their heuristics and ``source`` says why. ``probe=False``
    skips that check for a caller that made it already (:func:`preflight`)."""
    provider = settings.resolved_provider()
    if provider == "heuristic":
        yield LLMSession(None, LLMSource(kind="heuristic", provider="heuristic", detail="no model: agents use their heuristics"))
        return
    if provider == "replay":
        if record_to is not None:
            raise UserError("--record needs a live provider (local, openai, ollama, sambanova or sambastudio), not replay")
        if cassette is None:
            raise UserError("replay needs a cassette")
        transport = open_replay(cassette)
        info = transport.info
        source = LLMSource(kind="replay", provider=info.provider, model=info.model,
                           detail=f"replaying {cassette.name}: {info.describe()}", cassette=info.model_dump())
        yield LLMSession(_client(transport, settings, bus, seed, agents, str(cassette), sleep=_no_sleep), source)
        return
    if record_to is not None:
        refuse_existing(record_to, force)
    problem = preflight(settings, allow_fallback) if probe else None
    if problem is not None:
        yield LLMSession(None, LLMSource(kind="heuristic", provider="heuristic", detail=problem))
        return
    live = build_transport(provider, settings)
    transport: Any = RecordingTransport(live) if record_to is not None else live
    where = public_url(live.endpoint) if provider != "local" else f"in this process, {Path(live.endpoint).name}"
    source = LLMSource(kind="live", provider=provider, model=live.model, detail=f"live {provider} model {live.model} ({where})")
    session = LLMSession(_client(transport, settings, bus, seed, agents), source, transport if record_to else None)
    yield session
    if record_to is not None:
        info = cassette_info(provider, live, scenario, seed, recording_metadata or {})
        session.recorder.save(record_to, info, secrets_of(settings), force=force)  # type: ignore[union-attr]


def cassette_info(provider: str, live: Any, scenario: str, seed: int, extra: dict[str, Any]) -> CassetteInfo:
    """What recorded a cassette: the provider, the model (for a local model its file and sha256)."""
    details: dict[str, Any] = {"endpoint": public_url(live.endpoint)}
    runtime = f"{provider} server"
    if provider == "local":
        from llm_sched.llm.local_transport import file_sha256, runtime as local_runtime

        details = {"model_file": live.loaded.path.name, "model_sha256": file_sha256(live.loaded.path)}
        runtime = local_runtime()
    return CassetteInfo(provider=provider, model=live.model, runtime=runtime, recorded_at=now_utc(), scenario=scenario,
                        seed=seed, recorded_with=f"llm-sched {__version__}", **details, **extra)


def preflight(settings: Settings, allow_fallback: bool = False) -> str | None:
    """Check that the run's live provider can answer before anything starts.

    Returns None when it can (or the provider needs no model). When it cannot, raises a
    :class:`UserError` naming the provider, its URL without credentials and the fix; with
    ``allow_fallback``, returns that reason instead, for a run on the heuristics to state."""
    provider = settings.resolved_provider()
    if provider not in MODEL_PROVIDERS:
        return None
    try:
        if provider == "local":
            local_model(settings)  # loads the process's one instance: the run uses it next
        else:
            from llm_sched.probes import probe_configured

            result = probe_configured(settings, provider)
            if not result.ok:
                raise UserError(f"the {provider} provider cannot be reached: {result.detail}. {result.fix}")
    except UserError as exc:
        if allow_fallback:
            return f"heuristic (fallback to heuristics (--allow-fallback): {exc})"
        raise UserError(f"{exc} (or give --allow-fallback to run on the agents' heuristics)") from None
    return None


def run_probe_answer(transport: Any) -> str:
    """Ask ``transport`` one tiny constrained question (``--check``)."""
    from typing import Literal

    from pydantic import create_model

    from llm_sched.llm.records import Message

    schema = create_model("Probe", ready=(Literal["yes", "no"], ...))
    reply = asyncio.run(transport.complete([Message(role="user", content="Are you ready? Answer yes or no.")], schema, 60))
    return reply.text
