"""The federation's JetStream layout and the connection every process of it opens.

- the job log: stream ``FED_<NAME>_JOBS`` on ``fed.<name>.jobs``; a job's stream sequence is its
  position, the order every member places jobs in; a re-submitted job id within an hour is dropped
  (``Nats-Msg-Id``);
- the decision stream: ``FED_<NAME>_DECISIONS`` on ``fed.<name>.decided.<instance>``: the record;
- the registry: KV bucket ``FED_<NAME>_REGISTRY`` whose entries live ``REGISTRY_TTL`` seconds unless
  refreshed: the members that are up, their progress and their suspicion (phi) of each other;
- the status bucket: ``FED_<NAME>_STATUS``: the formation record (the membership agreed before the
  first decision, written once by compare-and-set) and each member's final status.

Replicas: one per server, up to three, so a three-server cluster keeps every stream through the
loss of one server. Streams are read by sequence or by subject (direct get), never through a
consumer, so nothing a reader depends on lives only on the server that died.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llm_sched.errors import UserError
from llm_sched.federation.spec import Subjects

_log = logging.getLogger("llm_sched.federation.bus")
REGISTRY_TTL = 3.0  # seconds an agent stays listed without refreshing its entry
DUPLICATE_WINDOW = 3600.0  # seconds within which a re-published job or record id is dropped
REQUEST_TIMEOUT = 2.0  # JetStream API requests: a dead server should not stall a member for long


def server_list(url: str) -> list[str]:
    """``nats://a:1,nats://b:2`` as a list (what several servers of a cluster are given as)."""
    return [u.strip() for u in url.split(",") if u.strip()]


@dataclass(frozen=True)
class Credentials:
    """A tenant's user and password on the bus (the password never in a repr, a log or a command line)."""

    tenant: str
    user: str
    password: str = field(repr=False)


def read_credentials(path: Path) -> Credentials:
    """The credentials file ``llm-sched bus --tenants`` wrote; UserError naming the file when unusable."""
    try:
        body = json.loads(path.read_text())
        return Credentials(str(body["tenant"]), str(body["user"]), str(body["password"]))
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: `llm-sched bus --tenants NAME` writes a tenant's credentials") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a credentials file of `llm-sched bus --tenants`") from None


async def connect(servers: Sequence[str], name: str, *, patient: bool = False, creds: Path | None = None):  # noqa: ANN201
    """A NATS connection, as the tenant of ``creds`` if given. ``patient`` (an agent): keep trying, at
    start and after every loss, for as long as the process runs. Otherwise (a command): a
    :class:`UserError` when no server answers."""
    import nats

    auth = {}
    if creds is not None:
        c = read_credentials(creds)
        auth = {"user": c.user, "password": c.password}

    async def quiet(exc: Exception) -> None:
        # nats-py's default prints a traceback for every failed connection attempt: one line is enough.
        _log.info("bus: %s", type(exc).__name__)

    if patient:
        return await nats.connect(servers=list(servers), name=name, error_cb=quiet, max_reconnect_attempts=-1, **auth,
                                  reconnect_time_wait=0.1, connect_timeout=2, allow_reconnect=True,
                                  ping_interval=2, max_outstanding_pings=3, no_echo=True)
    try:
        return await nats.connect(servers=list(servers), name=name, error_cb=quiet, max_reconnect_attempts=2, **auth,
                                  reconnect_time_wait=0.2, connect_timeout=2, allow_reconnect=True)
    except Exception as exc:  # nats-py raises several kinds (no servers, timeouts, refused)
        if "authorization" in str(exc).lower():
            raise UserError(f"the bus at {', '.join(servers)} refused the connection: "
                            + (f"the credentials in {creds} are not accepted" if creds else
                               "it needs a tenant's credentials (--creds FILE)")) from None
        raise UserError(f"cannot reach the bus at {', '.join(servers)} ({type(exc).__name__}); is it running? "
                        f"start it with `llm-sched federation up FILE` or `llm-sched bus`") from None


async def ensure_layout(js, subjects: Subjects, replicas: int) -> None:  # noqa: ANN001
    """Create the streams and buckets that do not exist yet; leave existing ones as they are (an agent
    started alone must not fail on a cluster's three-replica streams)."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig
    from nats.js.errors import BucketNotFoundError, NotFoundError

    common = {"num_replicas": replicas, "storage": StorageType.FILE, "duplicate_window": DUPLICATE_WINDOW,
              "allow_direct": True, "discard": DiscardPolicy.OLD}
    for name, subject in ((subjects.jobs_stream, subjects.jobs), (subjects.decisions_stream, subjects.decided_all)):
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=name, subjects=[subject], **common))
    for bucket, ttl in ((subjects.registry_bucket, REGISTRY_TTL), (subjects.status_bucket, None)):
        try:
            await js.key_value(bucket)
        except (BucketNotFoundError, NotFoundError):
            await js.create_key_value(bucket=bucket, ttl=ttl, history=1, replicas=replicas)


LAYOUT_ATTEMPTS = 6  # a cluster of servers just started elects its JetStream leaders first: seconds, under load


async def layout_for(js, subjects: Subjects, replicas: int, where: str) -> None:  # noqa: ANN001
    """:func:`ensure_layout` for a command or a process that cannot go on without it: asked again
    while the bus answers with timeouts or without JetStream yet, then a :class:`UserError` naming the
    bus at ``where`` (not a traceback). An agent, which waits for the bus for as long as it runs, has
    its own loop."""
    import asyncio

    import nats.errors

    from llm_sched.safe_text import one_line

    for attempt in range(1, LAYOUT_ATTEMPTS + 1):
        try:
            return await ensure_layout(js, subjects, replicas)
        except nats.errors.Error as exc:  # a timeout, no JetStream yet, no responders: the same again
            if attempt == LAYOUT_ATTEMPTS:
                raise UserError(f"the bus at {where} did not make the federation's streams and buckets "
                                f"({LAYOUT_ATTEMPTS} attempts; the last: {type(exc).__name__}: "
                                f"{one_line(str(exc))[:200]}); if its servers were just started, run the "
                                "command again") from None
            await asyncio.sleep(1.0)


async def registered(kv, names: Sequence[str]) -> dict[str, bytes]:  # noqa: ANN001
    """The entries of ``names`` present in a KV bucket, read one by one. Listing the keys instead would
    create a consumer on the bucket at every call, which a polling loop turns into hundreds."""
    from nats.js.errors import KeyNotFoundError

    out = {}
    for name in names:
        try:
            entry = await kv.get(name)
        except KeyNotFoundError:
            continue
        if entry.value:
            out[name] = entry.value
    return out
