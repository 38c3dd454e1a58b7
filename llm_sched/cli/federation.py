"""The federation's commands: ``llm-sched bus | agent | federation up|down | submit | status``.

They are subcommands (the first word), beside the flag-driven modes of ``python main.py``, which keep
working as before. ``python main.py federation up FILE`` and ``python -m llm_sched ...`` work too.

Where things are: ``--data DIR`` (default ``runs/federation``) holds the bus record, the keys, the
ledgers and the logs; the bus is ``--nats URL``, else the setting NATS_URL, else the one recorded there.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from llm_sched.errors import UserError
from llm_sched.safe_text import one_line
from llm_sched.transport import wire

SUBCOMMANDS = ("bus", "agent", "execute", "federation", "submit", "status", "chaos")
DEFAULT_DATA = Path("runs/federation")
FORMATION_TIMEOUT = 60.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-sched", description="Agents as processes on a NATS bus.")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the federation's folder (default %(default)s)")

    def nats_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--nats", metavar="URL", help="the bus (nats://host:port[,...]); default NATS_URL, else "
                                                     "the bus recorded under --data")
        p.add_argument("--creds", type=Path, metavar="FILE", help="a tenant's credentials on a bus with tenants "
                                                                 "(written by `llm-sched bus --tenants`)")

    bus = sub.add_parser("bus", help="start a local nats-server with JetStream (1 server, or a cluster of 3)")
    data_flag(bus)
    bus.add_argument("--servers", type=int, default=1, choices=(1, 3))
    bus.add_argument("--tenants", metavar="NAMES", help="comma-separated tenants, each a NATS account of its own "
                                                        "(credentials under DATA/tenants/)")

    agent = sub.add_parser("agent", help="run one agent process")
    agent.add_argument("--name", required=True)
    agent.add_argument("--federation", required=True, metavar="FILE")
    data_flag(agent)
    nats_flag(agent)
    agent.add_argument("--replicas", type=int, choices=(1, 3), help="stream replicas if it creates them "
                                                                    "(default: as the recorded bus)")

    execute = sub.add_parser("execute", help="run the federation's executor process (federation up --executor "
                                             "starts it): its decisions go to Slurm or local processes")
    execute.add_argument("--federation", required=True, metavar="FILE")
    data_flag(execute)
    nats_flag(execute)

    fed = sub.add_parser("federation", help="start or stop a whole federation")
    fsub = fed.add_subparsers(dest="action", required=True)
    fup = fsub.add_parser("up", help="start the bus (unless --nats / NATS_URL) and one process per agent")
    fup.add_argument("file", metavar="FILE", help="a federation or scenario file (e.g. scenarios/federation.yaml)")
    data_flag(fup)
    nats_flag(fup)
    fup.add_argument("--servers", type=int, default=1, choices=(1, 3), help="servers of the bus it starts")
    fup.add_argument("--replicas", type=int, default=1, choices=(1, 3), help="stream replicas on a bus given "
                                                                             "with --nats (default %(default)s)")
    fup.add_argument("--executor", choices=("local", "slurm"), help="run the decisions: slurm (the cluster is "
                     "Slurm's, read once into the genesis; SLURM_CONF or --slurm-conf) or local processes")
    fup.add_argument("--time-scale", type=float, default=None, metavar="S",
                     help="with --executor: wall seconds per simulated second of a job's runtime (default 0.001)")
    fup.add_argument("--slurm-conf", type=Path, metavar="FILE", help="with --executor slurm: the slurm.conf to use")
    fdown = fsub.add_parser("down", help="stop the agents (they write their final status), then the bus")
    data_flag(fdown)

    submit = sub.add_parser("submit", help="submit the jobs of a scenario file")
    submit.add_argument("file", metavar="FILE")
    submit.add_argument("--pace", type=float, default=0.0, metavar="SECONDS",
                        help="wall-clock seconds between two jobs (default: all at once)")
    data_flag(submit)
    nats_flag(submit)

    chaos = sub.add_parser("chaos", help="kill, pause, cut off and restart agents and servers on a schedule")
    chaos.add_argument("schedule", metavar="SCHEDULE", help="a YAML file of timed actions (see llm_sched/federation/chaos.py)")
    data_flag(chaos)

    status = sub.add_parser("status", help="members, suspicion (phi), view and leader, jobs decided")
    data_flag(status)
    nats_flag(status)
    status.add_argument("--json", action="store_true", help="the whole status as JSON")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bus":
        return _bus(args)
    if args.command == "agent":
        return _agent(args)
    if args.command == "execute":
        return _execute(args)
    if args.command == "federation":
        return _up(args) if args.action == "up" else _down(args)
    if args.command == "submit":
        return _submit(args)
    if args.command == "chaos":
        return _chaos(args)
    return _status(args)


def _chaos(args: argparse.Namespace) -> int:
    from llm_sched.federation.chaos import load_schedule, run_schedule

    fed = _recorded_federation(args.data)
    actions = load_schedule(Path(args.schedule), fed)
    done = run_schedule(actions, fed, args.data, say=lambda line: print(one_line(line), flush=True))
    print(f"{done} of {len(actions)} actions carried out")
    return 0


def _settings_url(flag: str | None) -> str | None:
    if flag:
        return flag
    from llm_sched.config import load_settings

    return load_settings().nats_url


def _federation(file: str):  # noqa: ANN202
    from llm_sched.config import load_settings
    from llm_sched.federation.spec import load_federation

    return load_federation(file, load_settings().scenarios_dir)


def _recorded_federation(data: Path):  # noqa: ANN202
    path = data / "genesis.json"
    try:
        file = json.loads(path.read_text())["file"]
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: start a federation with `llm-sched federation up FILE "
                        f"--data {data}`") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a federation genesis") from None
    return _federation(str(file))


def _bus(args: argparse.Namespace) -> int:
    from llm_sched.federation.launcher import start_bus

    tenants = [t.strip() for t in (args.tenants or "").split(",") if t.strip()]
    bus, _ = start_bus(args.data, args.servers, tenants)
    print(f"bus: {bus.url} ({args.servers} server{'s' if args.servers > 1 else ''}, JetStream under {args.data / 'bus'})")
    for t in tenants:
        print(f"tenant {t}: credentials in {args.data / 'tenants' / (t + '.json')} (give them with --creds)")
    print(f"stop it with: llm-sched federation down --data {args.data}")
    return 0


def _agent(args: argparse.Namespace) -> int:
    from llm_sched.federation.agent import AgentOptions, run_agent
    from llm_sched.federation.bus import server_list
    from llm_sched.federation.launcher import read_bus

    fed = _federation(args.federation)
    if args.name not in {m.name for m in fed.members}:
        raise UserError(f"no agent {one_line(args.name)[:80]!r} in {fed.path}; its agents are: "
                        f"{', '.join(m.name for m in fed.members)}")
    bus = read_bus(args.data, _settings_url(args.nats), args.creds)
    options = AgentOptions(tuple(server_list(bus.url)), args.data, replicas=args.replicas or bus.replicas,
                           creds=bus.creds)
    return run_agent(fed, args.name, options)


def _execute(args: argparse.Namespace) -> int:
    from llm_sched.federation.bus import server_list
    from llm_sched.federation.executor import ExecutorOptions, run_executor
    from llm_sched.federation.launcher import read_bus

    fed = _federation(args.federation)
    bus = read_bus(args.data, _settings_url(args.nats), args.creds)
    return run_executor(fed, ExecutorOptions(tuple(server_list(bus.url)), args.data, bus.creds))


def _execution_plan(args: argparse.Namespace, fed):  # noqa: ANN001, ANN202
    """Where ``federation up --executor`` runs the decisions, and the cluster it runs them on."""
    if args.executor is None:
        if args.time_scale is not None or args.slurm_conf is not None:
            raise UserError("--time-scale and --slurm-conf go with --executor local or slurm")
        return None
    from llm_sched.execution.factory import DEFAULT_TIME_SCALE
    from llm_sched.federation.execution import ExecutionPlan

    scale = DEFAULT_TIME_SCALE if args.time_scale is None else args.time_scale
    if not 0 < scale <= 1000:
        raise UserError(f"--time-scale {args.time_scale}: give wall seconds per simulated second, above 0 and at "
                        "most 1000")
    if args.executor == "local":
        if args.slurm_conf is not None:
            raise UserError("--slurm-conf goes with --executor slurm")
        pools = list(fed.initial_state().pools.values())
        return ExecutionPlan(executor="local", time_scale=scale, pools=pools)
    from llm_sched.execution.slurm import pools_of
    from llm_sched.execution.slurm_commands import sinfo_nodes

    conf = args.slurm_conf.resolve() if args.slurm_conf else None
    pools = pools_of(sinfo_nodes(env=None if conf is None else {"SLURM_CONF": str(conf)}))
    if not pools:
        raise UserError("Slurm reports no node in any partition: nothing to run the decisions on")
    return ExecutionPlan(executor="slurm", time_scale=scale, slurm_conf=None if conf is None else str(conf),
                         pools=pools)


def _up(args: argparse.Namespace) -> int:
    from llm_sched.federation.bus import server_list
    from llm_sched.federation.launcher import Bus, start_bus, up

    fed = _federation(args.file)
    execution = _execution_plan(args, fed)
    url = _settings_url(args.nats)
    if url:
        bus = Bus(url, replicas=args.replicas, creds=args.creds.resolve() if args.creds else None)
        print(f"bus: {url} (given)")
    else:
        bus, _ = start_bus(args.data, args.servers)
        print(f"bus: {bus.url} ({args.servers} server{'s' if args.servers > 1 else ''} started, data under "
              f"{args.data / 'bus'})")
    pids = up(fed, args.data, bus, execution)
    print(f"federation {fed.name}: {len(pids)} agent processes started (logs under {args.data / 'agents'})")
    if execution is not None:
        nodes = sum(len(p.nodes) for p in execution.pools)
        print(f"executor: {execution.executor} on {nodes} nodes in {len(execution.pools)} pools (log: "
              f"{args.data / 'executor' / 'executor.log'})")
    import asyncio  # here, not at the top: `--help` and `--check` start without it

    formed = asyncio.run(_wait_formation(fed, server_list(bus.url), bus.creds))
    print(f"formed: {formed}" if formed else f"not formed within {FORMATION_TIMEOUT:.0f} s: see the agents' logs")
    return 0 if formed else 1


async def _wait_formation(fed, servers: list[str], creds: Path | None) -> str | None:  # noqa: ANN001
    from asyncio import sleep as asyncio_sleep

    from nats.js.errors import BucketNotFoundError, KeyNotFoundError

    from llm_sched.federation.bus import REQUEST_TIMEOUT, connect

    nc = await connect(servers, f"{fed.name}/up", creds=creds)
    try:
        js = nc.jetstream(timeout=REQUEST_TIMEOUT)
        deadline = time.monotonic() + FORMATION_TIMEOUT
        while time.monotonic() < deadline:
            try:
                entry = await (await js.key_value(fed.subjects.status_bucket)).get("formation")
                body = wire.parse_json(entry.value or b"{}")
                return f"{len(body.get('present', []))} of {fed.n} members present, quorum {fed.quorum}"
            except (BucketNotFoundError, KeyNotFoundError, wire.WireError, AttributeError):
                await asyncio_sleep(0.2)
        return None
    finally:
        await nc.drain()


def _down(args: argparse.Namespace) -> int:
    from llm_sched.federation.launcher import down

    stopped = down(args.data)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from llm_sched.federation.bus import server_list
    from llm_sched.federation.client import submit
    from llm_sched.federation.launcher import read_bus

    fed = _recorded_federation(args.data)
    jobs = _federation(args.file)
    if not 0 <= args.pace <= 3600:
        raise UserError(f"--pace {args.pace}: give seconds between 0 and 3600")
    bus = read_bus(args.data, _settings_url(args.nats), args.creds)
    import asyncio

    done = asyncio.run(submit(fed, jobs, server_list(bus.url), bus.replicas, args.pace, bus.creds))
    print(f"submitted {len(done.accepted)} jobs of {jobs.path} to federation {fed.name}"
          + (f" (positions from {done.first_position})" if done.first_position else ""))
    if done.duplicates:
        print(f"already in the job log, not submitted again: {len(done.duplicates)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from llm_sched.federation.bus import server_list
    from llm_sched.federation.client import status
    from llm_sched.federation.launcher import read_bus

    fed = _recorded_federation(args.data)
    bus = read_bus(args.data, _settings_url(args.nats), args.creds)
    import asyncio

    body = asyncio.run(status(fed, server_list(bus.url), args.data, bus.creds))
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print("\n".join(status_lines(fed, body)))
    return 1 if body["invalid"] or body["conflicts"] else 0


def status_lines(fed, body: dict) -> list[str]:  # noqa: ANN001
    """The status as text: one line per member, then the decision log."""
    members: dict[str, dict] = body["members"]
    lines = [f"federation {fed.name}: {len(members)} of {fed.n} members up (quorum {fed.quorum})"]
    for m in fed.members:
        info = members.get(m.name)
        if info is None:
            final = body["final"].get(m.name)
            lines.append(f"  {m.name:<20} down" + (" (stopped cleanly)" if final else ""))
            continue
        phi = info.get("phi", {})
        worst = max(phi.items(), key=lambda kv: kv[1], default=("-", 0.0))
        suspected = ", ".join(one_line(str(s)) for s in info.get("suspected", [])) or "none"
        lines.append(f"  {m.name:<20} up  instance {info.get('instance')} view {info.get('view')} "
                     f"leader {one_line(str(info.get('leader')))} applied {info.get('applied')} "
                     f"max phi {one_line(str(worst[0]))}={worst[1]} suspects {suspected}"
                     + (f" excludes from leading {', '.join(one_line(str(x)) for x in info['excluded'])}"
                        if info.get("excluded") else ""))
    lines.append(f"{body['decided']} decided of {body['submitted']} submitted ({body['instances']} instances, "
                 f"{body['records']} records; every certificate checked against the genesis)")
    ex = body.get("executor")
    if ex:
        lines.append(f"executor ({one_line(str(ex.get('executor')))}): {ex.get('started')} jobs started, "
                     f"{ex.get('running')} running, {ex.get('waiting', 0)} waiting for room, {ex.get('completed')} completed, {ex.get('failed')} failed, "
                     f"{ex.get('lost')} lost, {ex.get('nodes_down')} nodes went down; {ex.get('reports')} reports "
                     "filed in the job log")
    refused = body.get("refused") or {}
    if refused:
        lines.append(f"{len(refused)} entries of the job log refused by every member (neither a job nor a report "
                     "signed by the executor: someone else publishes on the bus):")
        lines += [f"  {one_line(str(entry))}: {one_line(str(why))}" for entry, why in list(refused.items())[:5]]
    for problem in [*body["invalid"], *body["conflicts"]]:
        lines.append(f"  problem: {one_line(str(problem))}")
    return lines
