"""``llm-sched serve [--port N] [--runs DIR] [--host 127.0.0.1]``: the live web view of runs.

Serves one page that lists the run folders and draws a stored or running run from its events
(:mod:`llm_sched.web`). It binds to this machine only unless ``--host`` says otherwise. The web
modules (Starlette, uvicorn) are imported when the command runs, so ``--help`` starts fast.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from llm_sched.errors import UserError

if TYPE_CHECKING:
    from types import FrameType

    from starlette.applications import Starlette

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"
# Addresses that listen on every interface: the page is then reachable from the network.
_EVERYWHERE = ("0.0.0.0", "::", "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-sched serve", description="A live web view of the runs in a folder.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="the port to listen on (default %(default)s; 0: any free port)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="the address to listen on (default %(default)s: this machine only)")
    parser.add_argument("--runs", type=Path, metavar="DIR", help="the runs folder (default: the runs_dir setting)")
    return parser


def main(argv: list[str]) -> int:
    """Serve until Ctrl-C; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is out of range: use 1 to 65535, or 0 for any free port")
    runs_dir = _runs_dir(args.runs)
    try:
        import uvicorn  # noqa: F401  (checked here, used in _run)

        from llm_sched.web.app import create_app
    except ImportError as exc:
        raise UserError(f"the web view needs the 'web' extra ({exc.name} is missing): "
                        "pip install -e '.[web]'") from None
    sock = _bind(args.host, args.port)
    app = create_app(runs_dir, allowed_hosts=_allowed_hosts(args.host))
    print(f"llm-sched: the runs in {runs_dir} at {_url(args.host, sock.getsockname()[1])} (Ctrl-C stops)", flush=True)
    if args.host in _EVERYWHERE:
        print("llm-sched: listening on every interface: anyone who can reach this machine can read the runs",
              flush=True)
    return _run(app, sock)


def _runs_dir(given: Path | None) -> Path:
    if given is None:
        from llm_sched.config import load_settings

        given = load_settings().runs_dir
    if not given.is_dir():
        raise UserError(f"the runs folder {given} does not exist: run a scenario first "
                        "(python main.py --scenario healthy) or pass --runs DIR")
    return given.resolve()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a port in use is one clear error and port 0 is known."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UserError(f"--host {host!r} is not an address of this machine: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (try another --port, or 0)") from None
    sock.setblocking(False)
    return sock


def _allowed_hosts(host: str) -> list[str] | None:
    """The Host names the app answers: this machine's (None: the app's default), plus ``host``."""
    from llm_sched.web.app import LOCAL_HOSTS

    if host in _EVERYWHERE:
        return ["*"]  # reached by whatever name the network gives it
    return None if host in LOCAL_HOSTS else [*LOCAL_HOSTS, host]


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in _EVERYWHERE else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def _run(app: Starlette, sock: socket.socket) -> int:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # End the open event streams (a live run's never ends by itself): the server then waits
            # only for them to close, not for its graceful-shutdown timeout.
            app.state.stopping.set()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=3)
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn stops on Ctrl-C, then raises it again for the caller: stopping is the normal end
    finally:
        sock.close()
    print("llm-sched: stopped", flush=True)
    return 0
