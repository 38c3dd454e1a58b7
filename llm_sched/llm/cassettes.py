"""Cassettes: what a model answered, recorded at the transport, replayed by a hash of the request.

A cassette is one YAML file: ``metadata`` (which provider, model, model file and its sha256, runtime
and version, date, prompt-template hash, seed: what recorded it) and ``interactions``, each the
sha256 of the canonical request (messages and answer schema), the messages, and the reply (text and
token counts) or the classified failure. Replay looks every request up by that hash, so it costs the
same for the first request and the thousandth, and it needs no network and no client library: the
recorded answers are served by :class:`ReplayTransport` through the same client code (validation,
repair, retries, accounting) as a live model.

Recording never destroys: the file is written once, at the end, by exclusive creation (or atomic
replacement with ``force``), and known secrets are scrubbed from every text before it is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections import defaultdict, deque
from collections.abc import Iterable
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from llm_sched.core.records import Message
from llm_sched.errors import UserError
from llm_sched.llm.transport import RawReply, ReplayMiss, TransportError
from llm_sched.loader import FileMissing, load_yaml
from llm_sched.names import check_name, inside
from llm_sched.scrub import Scrubber

FORMAT = "llm-sched cassette 2"
# The shipped cassettes are under 200 kB; a long recorded experiment may be tens of megabytes. Larger is
# no cassette this program wrote, and would take minutes and gigabytes to parse.
MAX_CASSETTE_BYTES = 100 * 1024 * 1024


class CassetteInfo(BaseModel):
    """What recorded a cassette; shown in the replay banner and carried by the run's events."""

    model_config = ConfigDict(frozen=True, extra="allow")

    provider: str
    model: str
    runtime: str
    recorded_at: str
    scenario: str
    seed: int
    prompt_template_hash: str
    model_file: str | None = None
    model_sha256: str | None = None
    endpoint: str | None = None  # a server's URL, credentials removed
    recorded_with: str = ""
    how: str = "live model"

    def describe(self) -> str:
        """One line: what the cassette's answers came from (the metadata has the rest)."""
        model = self.model + (f" (sha256 {self.model_sha256[:12]}…)" if self.model_sha256 else "")
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"recorded {self.recorded_at[:10]} from {self.provider} {model}{where} on {self.runtime}, seed {self.seed}"


def cassette_path(cassettes_dir: Path, scenario: str, provider: str) -> Path:
    """``<cassettes>/<scenario>-<provider>.yaml``; both parts must be identifiers (see :mod:`llm_sched.names`)."""
    name = check_name("cassette", f"{check_name('scenario', scenario)}-{provider}")
    return inside(cassettes_dir, cassettes_dir / f"{name}.yaml")


def request_key(messages: list[Message], schema: type[BaseModel]) -> str:
    """sha256 of the canonical request: the messages and the answer's JSON schema."""
    canonical = json.dumps({"messages": [m.model_dump() for m in messages], "schema": schema.model_json_schema()},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class RecordingTransport:
    """Wraps a live transport and keeps every request with its reply or failure, in order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.model = inner.model
        self.endpoint = inner.endpoint
        self.max_concurrency = getattr(inner, "max_concurrency", None)
        self.interactions: list[dict[str, Any]] = []

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        entry: dict[str, Any] = {"key": request_key(messages, schema), "schema": schema.__name__,
                                 "messages": [m.model_dump() for m in messages]}
        self.interactions.append(entry)
        try:
            reply = await self.inner.complete(messages, schema, timeout)
        except TransportError as exc:
            entry["error"] = {"kind": exc.kind, "detail": str(exc), "status": exc.status}
            raise
        except asyncio.CancelledError:
            # The client's timeout cancelled the call: recorded as the timeout the client reports, so
            # that a replay takes the same path (retry or fallback) instead of missing the request.
            entry["error"] = {"kind": "timeout", "detail": f"no answer within {timeout:g} s", "status": None}
            raise
        entry["reply"] = {"text": reply.text, "tokens_in": reply.tokens_in, "tokens_out": reply.tokens_out}
        return reply

    def save(self, path: Path, info: CassetteInfo, secrets: Iterable[str] = (), *, force: bool = False) -> None:
        """Write the cassette: exclusively (an existing file is an error) unless ``force``."""
        import yaml

        scrub = Scrubber(secrets)
        data = {"format": FORMAT, "metadata": info.model_dump(exclude_none=True),
                "interactions": [json.loads(scrub(json.dumps(entry))) for entry in self.interactions
                                 if "reply" in entry or "error" in entry]}
        text = yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=False, width=120)
        path.parent.mkdir(parents=True, exist_ok=True)
        if force:
            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, path)
            return
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            raise UserError(f"{path} exists: not overwritten (give --force to replace it)") from None


def refuse_existing(path: Path, force: bool) -> None:
    """Fail before a recording run starts if its cassette could not be written at the end."""
    if path.exists() and not force:
        raise UserError(f"{path} exists: a recording would not overwrite it (give --force to replace it, "
                        "or --record-to another path)")


class ReplayTransport:
    """Serves a cassette's recorded replies by request hash; a request it never saw is a miss.

    An identical request asked again gets the next recorded reply for it, and the last one once they
    are used up (a model at temperature 0 answers the same question the same way)."""

    max_concurrency = None

    def __init__(self, path: Path, info: CassetteInfo, interactions: list[dict[str, Any]]) -> None:
        self.path = path
        self.info = info
        self.provider = "replay"
        self.model = info.model
        self.endpoint = str(path)
        self._replies: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for entry in interactions:
            self._replies[entry["key"]].append(entry)

    async def complete(self, messages: list[Message], schema: type[BaseModel], timeout: float) -> RawReply:
        queue = self._replies.get(request_key(messages, schema))
        if not queue:
            raise ReplayMiss(f"{self.path} has no recorded answer for this request")
        entry = queue.popleft() if len(queue) > 1 else queue[0]
        if "error" in entry:
            error = entry["error"]
            raise TransportError(error["kind"], error["detail"], status=error.get("status"))
        reply = entry["reply"]
        return RawReply(reply["text"], reply.get("tokens_in"), reply.get("tokens_out"))


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        stat = path.stat()
    except OSError:
        stat = None
    return _load_yaml_cached(path, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


@lru_cache(maxsize=8)
def _load_yaml_cached(path: Path, _mtime_ns: int, _size: int) -> dict[str, Any]:
    """Parsed once per file version: the seed check and the replay both read the cassette."""
    try:
        data = load_yaml(path, "cassette", MAX_CASSETTE_BYTES)
    except FileMissing:
        raise UserError(f"no cassette at {path}: record one with --provider local --record-to {path}") from None
    if data.get("format") != FORMAT:
        raise UserError(f"{path}: not an llm-sched cassette (expected format {FORMAT!r}); record it again")
    return data


def read_info(path: Path) -> CassetteInfo:
    """The cassette's metadata, checked."""
    try:
        return CassetteInfo.model_validate(_load_yaml(path).get("metadata"))
    except ValidationError as exc:
        raise UserError(f"{path}: the cassette's metadata is incomplete: {exc.errors()[0]['loc']}") from None


def open_replay(path: Path) -> ReplayTransport:
    data = _load_yaml(path)
    try:
        info = CassetteInfo.model_validate(data.get("metadata"))
    except ValidationError as exc:
        raise UserError(f"{path}: the cassette's metadata is incomplete: {exc.errors()[0]['loc']}") from None
    interactions = data.get("interactions") or []
    if not isinstance(interactions, list) or not all(isinstance(e, dict) and "key" in e for e in interactions):
        raise UserError(f"{path}: the cassette's interactions are damaged; record it again")
    return ReplayTransport(path, info, interactions)


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
