"""From settings to a ready :class:`LLMClient` (or ``None`` for heuristics), with record and replay.

:func:`llm_session` is what a run uses: it picks the provider, checks at the start that a live one can
be reached (a run never discovers halfway that its model was never there), builds its transport,
and, when asked, records the model's answers to a cassette or serves them from one. It yields an
:class:`LLMSession` whose ``source`` says where the answers come from, for the banner, the events and
the summary (ARCHITECTURE.md, principle 9).

A scenario may give some agents another model than the run's (:class:`ModelChoice`): agents that do
not all share one model cannot all be swayed by the same text in the same way. Each such agent gets
its own client (its own breaker and retries), checked at the start like the run's; ``source.agents``
names what answers each of them, and every call record names its provider and model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llm_sched import __version__
from llm_sched.config import MODEL_PROVIDERS, Settings
from llm_sched.core.events import EventBus
from llm_sched.errors import UserError
from llm_sched.llm.cassettes import CassetteInfo, RecordingTransport, now_utc, open_replay, refuse_existing
from llm_sched.llm.client import Breaker, LLMClient, RetryPolicy
from llm_sched.llm.probes import public_url
from llm_sched.llm.transport import Transport
from llm_sched.scrub import Scrubber


class LLMSource(BaseModel):
    """Where a run's answers come from: a live model, a cassette (recorded from what), or heuristics."""

    model_config = ConfigDict(frozen=True)

    kind: str  # "live", "replay" or "heuristic"
    provider: str
    model: str | None = None
    detail: str = ""  # one line for the banner
    cassette: dict[str, Any] | None = None  # the cassette's metadata, when replaying
    agents: dict[str, str] = {}  # agent -> where its answers come from, for agents not on the run's model


@dataclass(frozen=True)
class ModelChoice:
    """The model that answers one agent instead of the run's: a live ``provider`` (the run's when
    None; ``heuristic``: no model at all) and a ``model`` it serves (None: the one the settings
    name; for ``local`` a GGUF file). Applies to live runs; a replay serves what the cassette holds
    and a heuristic run asks no model."""

    provider: str | None = None
    model: str | None = None


@dataclass
class LLMSession:
    """The client a run asks (None: heuristics), where its answers come from, and the recorder.
    ``agent_clients`` holds the agents whose answers come from elsewhere (None: heuristics)."""

    client: LLMClient | None
    source: LLMSource
    recorder: RecordingTransport | None = None
    agent_clients: dict[str, LLMClient | None] = field(default_factory=dict)

    def client_for(self, agent: str) -> LLMClient | None:
        """The client that answers ``agent``."""
        return self.agent_clients[agent] if agent in self.agent_clients else self.client


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
    agent_models: Mapping[str, ModelChoice] | None = None,
) -> Iterator[LLMSession]:
    """The LLM a run uses, and where its answers come from.

    ``replay`` serves ``cassette``; with ``record_to``, a live provider's answers are written there
    when the block ends without error (never over an existing file unless ``force``). A live provider
    that cannot be reached stops the run with a :class:`UserError` naming it and the fix, unless
    ``allow_fallback``: then the agents use their heuristics and ``source`` says why. ``probe=False``
    skips that check for a caller that made it already (:func:`preflight`). ``agent_models`` gives
    agents their own model in a live run; each is checked here, and named in ``source.agents``."""
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

        def replay_client(t: Any) -> LLMClient:
            return _client(t, settings, bus, seed, agents, str(cassette), sleep=_no_sleep)

        per_agent, described = _replayed_agents(transport, replay_client)
        source = LLMSource(kind="replay", provider=info.provider, model=info.model,
                           detail=_with_agents(f"replaying {cassette.name}: {info.describe()}", described),
                           cassette=info.model_dump(), agents=described)
        yield LLMSession(replay_client(transport), source, agent_clients=per_agent)
        return
    if record_to is not None:
        refuse_existing(record_to, force)
    problem = preflight(settings, allow_fallback) if probe else None
    if problem is not None:
        yield LLMSession(None, LLMSource(kind="heuristic", provider="heuristic", detail=problem))
        return
    live = build_transport(provider, settings)
    recorder = RecordingTransport(live) if record_to is not None else None

    def live_client(t: Any) -> LLMClient:
        return _client(t, settings, bus, seed, agents)

    per_agent, described, recorded = _live_agents(settings, provider, agent_models or {}, recorder, live_client,
                                                  allow_fallback)
    source = LLMSource(kind="live", provider=provider, model=live.model, agents=described,
                       detail=_with_agents(f"live {provider} model {live.model} ({_where(provider, live)})", described))
    session = LLMSession(live_client(recorder or live), source, recorder, per_agent)
    yield session
    if recorder is not None and record_to is not None:
        extra = {**(recording_metadata or {}), **({"agent_models": recorded} if recorded else {})}
        info = cassette_info(provider, live, scenario, seed, extra)
        recorder.save(record_to, info, secrets_of(settings), force=force)


def _where(provider: str, live: Any) -> str:
    """Where a live model runs, for the banner: a URL without credentials, or this process's file."""
    return public_url(live.endpoint) if provider != "local" else f"in this process, {Path(live.endpoint).name}"


def _with_agents(detail: str, described: Mapping[str, str]) -> str:
    """The banner line, with the agents whose answers come from elsewhere named after it."""
    if not described:
        return detail
    return f"{detail}; " + "; ".join(f"{agent}: {where}" for agent, where in described.items())


_MODEL_FIELD = {"openai": "openai_model", "ollama": "ollama_model", "sambanova": "sambanova_model",
                "local": "local_model"}


def settings_for_choice(settings: Settings, provider: str, model: str | None) -> Settings:
    """``settings`` with ``provider`` chosen and, if given, its model replaced by ``model``."""
    update: dict[str, Any] = {"provider": provider}
    if model is not None:
        if provider not in _MODEL_FIELD:
            raise UserError(f"the {provider} provider serves the model its endpoint is set up with; "
                            "an agent cannot choose another")
        update[_MODEL_FIELD[provider]] = Path(model) if provider == "local" else model
    return settings.model_copy(update=update)


def _model_key(settings: Settings, provider: str) -> tuple[str, str]:
    """Which model ``settings`` would ask through ``provider``: agents with equal keys share a client."""
    value = getattr(settings, _MODEL_FIELD[provider], None) if provider in _MODEL_FIELD else None
    return provider, str(value or "")


def _live_agents(
    settings: Settings, provider: str, choices: Mapping[str, ModelChoice], recorder: RecordingTransport | None,
    make_client: Any, allow_fallback: bool,
) -> tuple[dict[str, LLMClient | None], dict[str, str], dict[str, dict[str, str]]]:
    """Clients for the agents a scenario puts on another model than the run's: the clients, where
    each agent's answers come from (for ``source.agents``), and what to write in a cassette."""
    clients: dict[str, LLMClient | None] = {}
    described: dict[str, str] = {}
    recorded: dict[str, dict[str, str]] = {}
    shared: dict[tuple[str, str], tuple[LLMClient | None, str, dict[str, str]]] = {}
    for agent, choice in sorted(choices.items()):
        agent_provider = choice.provider or provider
        if agent_provider == "heuristic":
            clients[agent], described[agent] = None, "heuristic (the scenario gives this agent no model)"
            recorded[agent] = {"provider": "heuristic"}
            continue
        try:
            agent_settings = settings_for_choice(settings, agent_provider, choice.model)
        except UserError as exc:
            raise UserError(f"agent {agent}: {exc}") from None
        key = _model_key(agent_settings, agent_provider)
        if key == _model_key(settings, provider):
            continue  # the run's own model
        if key not in shared:
            shared[key] = _agent_client(agent, agent_settings, agent_provider, recorder, make_client, allow_fallback)
        clients[agent], described[agent], recorded[agent] = shared[key]
    return clients, described, recorded


def _agent_client(
    agent: str, settings: Settings, provider: str, recorder: RecordingTransport | None, make_client: Any,
    allow_fallback: bool,
) -> tuple[LLMClient | None, str, dict[str, str]]:
    """One agent's own model, checked before the run like the run's (a clear error naming the agent,
    or with ``allow_fallback`` its heuristic); recorded into the run's one cassette, in call order."""
    try:
        problem = preflight(settings, allow_fallback)
        live = build_transport(provider, settings) if problem is None else None
    except UserError as exc:
        raise UserError(f"agent {agent}: {exc}") from None
    if live is None:
        return None, problem, {"provider": "heuristic"}  # the reason says it is the heuristic, and why
    transport: Any = live
    if recorder is not None:
        transport = RecordingTransport(live)
        transport.interactions = recorder.interactions  # one list: the cassette keeps the order of the calls
    return make_client(transport), f"live {provider} model {live.model} ({_where(provider, live)})", {
        "provider": provider, "model": live.model}


class _RecordedAs:
    """The replay transport as one agent's: the same recorded answers, named after the model that
    gave them, so each call record says where its answer came from."""

    provider = "replay"
    max_concurrency = None

    def __init__(self, inner: Any, model: str) -> None:
        self.inner = inner
        self.model = model
        self.endpoint = inner.endpoint

    async def complete(self, messages: Any, schema: Any, timeout: float) -> Any:
        return await self.inner.complete(messages, schema, timeout)


def _replayed_agents(transport: Any, make_client: Any) -> tuple[dict[str, LLMClient | None], dict[str, str]]:
    """The agents a cassette recorded from another model than its own (``agent_models``): a client
    each that names that model, or none for an agent that answered by its heuristic."""
    recorded = (transport.info.model_extra or {}).get("agent_models") or {}
    if not isinstance(recorded, dict) or not all(isinstance(v, dict) and "provider" in v for v in recorded.values()):
        raise UserError(f"{transport.path}: the cassette's agent_models are damaged; record it again")
    clients: dict[str, LLMClient | None] = {}
    described: dict[str, str] = {}
    for agent, who in sorted(recorded.items()):
        if who["provider"] == "heuristic":
            clients[agent], described[agent] = None, "heuristic (when recorded)"
            continue
        clients[agent] = make_client(_RecordedAs(transport, str(who.get("model"))))
        described[agent] = f"recorded from {who['provider']} {who.get('model')}"
    return clients, described


def cassette_info(provider: str, live: Any, scenario: str, seed: int, extra: dict[str, Any]) -> CassetteInfo:
    """What recorded a cassette: the provider, the model (for a local model its file and sha256)."""
    details: dict[str, Any] = {"endpoint": public_url(live.endpoint)}
    runtime = f"{provider} server"
    if provider == "local":
        from llm_sched.llm.local_transport import file_sha256
        from llm_sched.llm.local_transport import runtime as local_runtime

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
            from llm_sched.llm.probes import probe_configured

            # The chat endpoint itself answers one tiny constrained question: a model list alone said
            # "ready" for servers whose every chat request failed or hung.
            result = probe_configured(settings, provider, chat=True)
            if not result.ok:
                raise UserError(f"the {provider} provider cannot be reached: {result.detail}. {result.fix}")
    except UserError as exc:
        if allow_fallback:
            return f"heuristic (fallback to heuristics (--allow-fallback): {exc})"
        raise
    return None


def run_probe_answer(transport: Any) -> str:
    """Ask ``transport`` the endpoints' readiness question, in the same schema (``--check``)."""
    from llm_sched.core.records import Message
    from llm_sched.llm.probes import CHAT_QUESTION, ReadyAnswer

    reply = asyncio.run(transport.complete([Message(role="user", content=CHAT_QUESTION)], ReadyAnswer, 60))
    return reply.text
