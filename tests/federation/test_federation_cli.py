"""The federation's subcommands on bad input: one clear message, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

from llm_sched.config import PROJECT_ROOT
from tests.conftest import Cli

SEVEN = str(PROJECT_ROOT / "scenarios" / "federations" / "seven.yaml")


def _refused(result, *words: str) -> None:  # noqa: ANN001
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    for word in words:
        assert word in result.err, result.err


def test_an_agent_not_in_the_federation_is_refused_naming_the_members(cli: Cli) -> None:
    result = cli("agent", "--name", "nobody\x1b[31m", "--federation", SEVEN, "--nats", "nats://127.0.0.1:9")
    _refused(result, "no agent", "gpu-a", "general")
    assert "\x1b[31m" not in result.err  # untrusted text reaches the terminal escaped


def test_status_without_a_federation_says_how_to_start_one(cli: Cli, tmp_path: Path) -> None:
    _refused(cli("status", "--data", str(tmp_path / "none")), "genesis.json does not exist", "federation up")


def test_a_bus_that_does_not_answer_is_named(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "fed"
    data.mkdir()
    (data / "genesis.json").write_text(json.dumps({"federation": "seven", "file": SEVEN, "members": [], "keys": []}))
    _refused(cli("status", "--data", str(data), "--nats", "nats://127.0.0.1:9"), "cannot reach the bus",
             "nats://127.0.0.1:9")


def test_a_missing_jobs_file_and_a_bad_pace_are_refused(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "fed"
    data.mkdir()
    (data / "genesis.json").write_text(json.dumps({"federation": "seven", "file": SEVEN, "members": [], "keys": []}))
    _refused(cli("submit", str(tmp_path / "nope.yaml"), "--data", str(data), "--nats", "nats://127.0.0.1:9"),
             "nope.yaml")
    _refused(cli("submit", SEVEN, "--data", str(data), "--nats", "nats://127.0.0.1:9", "--pace", "-1"), "--pace")


def test_a_bus_url_that_is_not_nats_is_refused_by_the_settings(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "genesis.json").write_text(json.dumps({"federation": "seven", "file": SEVEN, "members": [],
                                                        "keys": []}))
    cli.env["NATS_URL"] = "http://example.org"
    result = cli("status", "--data", str(tmp_path))
    assert result.code != 0 and "Traceback" not in result.text
    assert "NATS_URL" in result.err


def test_down_with_nothing_running_says_so(cli: Cli, tmp_path: Path) -> None:
    _refused(cli("federation", "down", "--data", str(tmp_path)), "nothing to stop")


def test_a_federation_file_with_a_mistake_names_the_file(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nseed: 1\ncluster: nowhere.yaml\nphases:\n  - name: p\n    jobs: []\n")
    result = cli("federation", "up", str(bad), "--data", str(tmp_path / "d"), "--nats", "nats://127.0.0.1:9")
    _refused(result, "bad.yaml")
    assert not (tmp_path / "d" / "genesis.json").exists()  # nothing made for a federation that did not load


def _federation_data(tmp_path: Path) -> Path:
    data = tmp_path / "fed"
    data.mkdir()
    (data / "genesis.json").write_text(json.dumps({"federation": "seven", "file": SEVEN, "members": [], "keys": []}))
    return data


def test_a_chaos_schedule_with_a_mistake_is_refused_naming_file_action_and_field(cli: Cli, tmp_path: Path) -> None:
    data = _federation_data(tmp_path)
    cases = {
        "unknown agent": ("actions:\n  - {at: 1, action: kill, name: nobody}\n", ["action 1", "nobody", "gpu-a"]),
        "cut without seconds": ("actions:\n  - {at: 1, action: cut, name: memory}\n", ["seconds"]),
        "unknown action": ("actions:\n  - {at: 1, action: explode, name: memory}\n", ["action", "kill"]),
        "negative time": ("actions:\n  - {at: -1, action: kill, name: memory}\n", ["at"]),
        "empty": ("actions: []\n", ["actions"]),
    }
    for what, (text, words) in cases.items():
        path = tmp_path / f"{what.replace(' ', '-')}.yaml"
        path.write_text(text)
        result = cli("chaos", str(path), "--data", str(data))
        _refused(result, path.name, *words)


def test_a_chaos_schedule_is_put_in_time_order_and_a_cut_becomes_a_stop_and_a_cont(tmp_path: Path) -> None:
    from llm_sched.federation.chaos import load_schedule
    from llm_sched.federation.spec import load_federation

    path = tmp_path / "s.yaml"
    path.write_text("actions:\n  - {at: 5, action: restart, name: gpu-b}\n  - {at: 1, action: cut, name: memory, "
                    "seconds: 2.5}\n  - {at: 2, action: kill, target: server, name: s1}\n")
    fed = load_federation(SEVEN, PROJECT_ROOT / "scenarios")
    steps = [(a.at, a.action, a.target, a.name) for a in load_schedule(path, fed)]
    assert steps == [(1, "stop", "agent", "memory"), (2, "kill", "server", "s1"), (3.5, "cont", "agent", "memory"),
                     (5, "restart", "agent", "gpu-b")]


def test_executor_flags_without_an_executor_are_refused(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "fed"
    _refused(cli("federation", "up", SEVEN, "--data", str(data), "--time-scale", "0.01"),
             "--time-scale and --slurm-conf go with --executor")
    _refused(cli("federation", "up", SEVEN, "--data", str(data), "--executor", "local", "--time-scale", "0"),
             "--time-scale 0.0", "above 0")
    _refused(cli("federation", "up", SEVEN, "--data", str(data), "--executor", "local", "--slurm-conf", "x.conf"),
             "--slurm-conf goes with --executor slurm")
    assert not data.exists()  # nothing started, nothing written


def test_a_slurm_conf_that_is_missing_stops_federation_up_before_anything_starts(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "fed"
    result = cli("federation", "up", SEVEN, "--data", str(data), "--executor", "slurm",
                 "--slurm-conf", str(tmp_path / "missing.conf"))
    _refused(result, "SLURM_CONF names", "missing.conf", "which is not a file")
    assert not data.exists()


def test_execute_needs_a_federation_made_with_an_executor(cli: Cli, tmp_path: Path) -> None:
    from llm_sched.federation.keys import init_keys
    from llm_sched.federation.spec import load_federation

    data = tmp_path / "fed"
    init_keys(load_federation(SEVEN, PROJECT_ROOT / "scenarios"), data)  # a genesis without an executor
    _refused(cli("execute", "--federation", SEVEN, "--data", str(data), "--nats", "nats://127.0.0.1:9"),
             "decides without an executor", "--executor slurm|local")
