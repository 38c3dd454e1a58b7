"""Hostile and broken input, as a new user or an attacker gives it: every case ends with exit code 1 or 2,
one message line naming the problem, no traceback, and the ledger (with a completed run in it) intact.

Each case is data: the files it writes into a fresh working folder, the flags, the environment, and a
fragment its message must contain. The command runs in this process (``llm_sched.cli.main``), so an
exception that escapes the CLI fails the test with its traceback; ``tests/test_cli_input.py`` and
friends run the same kind of cases as a subprocess.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llm_sched import cli
from llm_sched.config import ENV_VARS, PROJECT_ROOT
from tests.standin import Reply, StandIn

BIG = "123456789012345678901234"  # beyond 64 bits
Files = dict[str, "str | bytes | Callable[[Path], None]"]


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    says: str  # a fragment the message names (case-insensitive)
    files: Files = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    edits: tuple[tuple[str, str, str], ...] = ()  # (file under work/, old, new): a one-place edit of a copy
    server: tuple[Reply, ...] | None = None  # a stand-in model server answering these replies


# -- the working folder ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder whose ledger holds one completed scenario run: what every case must leave intact."""
    work = tmp_path_factory.mktemp("stored")
    shutil.copytree(PROJECT_ROOT / "scenarios", work / "scenarios", ignore=shutil.ignore_patterns("cassettes"))
    shutil.copytree(PROJECT_ROOT / "scenarios" / "cassettes", work / "scenarios" / "cassettes")
    with _environment(work, {}):
        assert cli.main(["--scenario", "healthy", "--provider", "heuristic", "--no-pause"]) == 0
    return work


@pytest.fixture
def work(stored: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    shutil.copytree(stored, folder)
    return folder


class _environment:
    """The CLI's environment for one case: cwd, HOME and the llm-sched settings, restored afterwards."""

    def __init__(self, work: Path, extra: dict[str, str]) -> None:
        self.values = {var: None for var in ENV_VARS.values()} | {
            "HOME": str(work / "home"),
            "LLM_SCHED_RUNS_DIR": str(work / "runs"),
            "LLM_SCHED_LEDGER": str(work / "runs" / "llm_sched.db"),
            "LLM_SCHED_SCENARIOS_DIR": str(work / "scenarios"),
            "LLM_SCHED_TIMEOUT": "2",
            "LLM_SCHED_MAX_ATTEMPTS": "1",
        } | extra
        self.work = work

    def __enter__(self) -> None:
        self.saved = {k: os.environ.get(k) for k in self.values}
        self.cwd = Path.cwd()
        (self.work / "home").mkdir(exist_ok=True)
        os.chdir(self.work)
        for key, value in self.values.items():
            _set(key, value)

    def __exit__(self, *exc: object) -> None:
        os.chdir(self.cwd)
        for key, value in self.saved.items():
            _set(key, value)


def _set(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _ledger_dump(work: Path) -> list[str]:
    with sqlite3.connect(f"file:{work / 'runs' / 'llm_sched.db'}?mode=ro", uri=True) as db:
        return list(db.iterdump())


def _stored_files(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted((work / "runs").rglob("*"))
            if p.is_file() and p.suffix not in (".db", ".db-wal", ".db-shm", ".lock") and "-checkpoints" not in p.name}


def _prepare(case: Case, work: Path) -> None:
    for name, content in case.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    for name, old, new in case.edits:
        path = work / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{name} has no {old!r} to replace"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -- the cases -------------------------------------------------------------------------------------

HEALTHY = "scenarios/healthy.yaml"
CLUSTER = "scenarios/clusters/specialists.yaml"
EXPERIMENT = "scenarios/experiments/default.yaml"
QUICK = "scenarios/evaluation/quick.yaml"
RUN = ("--scenario", "healthy", "--provider", "heuristic", "--no-pause")


def _scenario_file(content: str | bytes | Callable[[Path], None], case_id: str, says: str) -> Case:
    return Case(f"scenario-file-{case_id}", ("--scenario", "hostile", "--provider", "heuristic", "--no-pause"), says,
                files={"scenarios/hostile.yaml": content})


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def _loop(path: Path) -> None:
    path.symlink_to(path.name)


def _huge(path: Path) -> None:
    with path.open("w") as out:
        line = "# " + "x" * 1000 + "\n"
        for _ in range(12_000):  # 12 MB of comments
            out.write(line)


def _deep(opener: str, closer: str, depth: int = 20_000) -> str:
    return "name: x\nphases: " + opener * depth + closer * depth + "\n"


def _deep_block(depth: int = 3_000) -> str:  # indented: 4.5 MB, under the size limit
    return "name: x\nphases:\n" + "".join(" " * i + "-\n" for i in range(depth)) + " " * depth + "- 1\n"


def _alias_bomb() -> str:
    lines = ["name: bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    lines.append("phases: *a9")
    return "\n".join(lines) + "\n"


SCENARIO_FILES = [
    _scenario_file("", "empty", "hostile.yaml"),
    _scenario_file("# only a comment\n", "only-comments", "hostile.yaml"),
    _scenario_file("[1, 2, 3]\n", "a-list", "mapping"),
    _scenario_file("42\n", "a-number", "mapping"),
    _scenario_file("null\n", "null", "hostile.yaml"),
    _scenario_file("just some words\n", "a-string", "mapping"),
    _scenario_file(b"name: caf\xe9\nseed: 1\n", "latin-1", "UTF-8"),
    _scenario_file(b"\xff\xfen\x00a\x00m\x00e\x00", "utf-16", "UTF-8"),
    _scenario_file(b"name: a\x00b\n", "nul-byte", "hostile.yaml"),
    _scenario_file(bytes(range(256)) * 4, "binary", "hostile.yaml"),
    _scenario_file("name: [unclosed\n", "unclosed-bracket", "line"),
    _scenario_file("name: x\n\tseed: 1\n", "tab-indent", "line"),
    _scenario_file("name: x\n  seed: 1\n bad: [\n", "bad-indent", "line"),
    _scenario_file("name: 'unterminated\n", "unterminated-quote", "line"),
    _scenario_file("name: !!python/object:os.system ['echo pwned']\n", "python-tag", "hostile.yaml"),
    _scenario_file(_deep("[", "]"), "deep-flow-lists", "deep"),
    _scenario_file(_deep("{a: ", "}"), "deep-flow-maps", "deep"),
    _scenario_file(_deep_block(), "deep-block-lists", "deep"),
    _scenario_file(_alias_bomb(), "alias-bomb", "hostile.yaml"),
    _scenario_file(_huge, "12-megabytes", "MB"),
    _scenario_file(_directory, "a-directory", "hostile.yaml"),
    _scenario_file(_fifo, "a-fifo", "hostile.yaml"),
    _scenario_file(_loop, "a-symlink-loop", "hostile.yaml"),
    _scenario_file("name: hostile\ndescription: x\nseed: 1\n", "missing-fields", "cluster"),
    _scenario_file("name: hostile\ndescription: x\nseed: 1\ncluster: clusters/specialists.yaml\nphases: []\n",
                   "no-phases", "phases"),
]


def _job_edit(case_id: str, old: str, new: str, says: str, file: str = HEALTHY) -> Case:
    return Case(f"scenario-field-{case_id}", RUN, says, edits=((file, old, new),))


SCENARIO_FIELDS = [
    _job_edit("cores-true", "cores: 32", "cores: true", "cores"),
    _job_edit("cores-yes", "cores: 32", "cores: yes", "cores"),
    _job_edit("nodes-string", "nodes: 2", "nodes: '2'", "nodes"),
    _job_edit("nodes-zero", "nodes: 2", "nodes: 0", "nodes"),
    _job_edit("nodes-negative", "nodes: 2", "nodes: -1", "nodes"),
    _job_edit("nodes-beyond-64-bits", "nodes: 2", f"nodes: {BIG}", "nodes"),
    _job_edit("nodes-fraction", "nodes: 2", "nodes: 1.5", "nodes"),
    _job_edit("nodes-list", "nodes: 2", "nodes: [2]", "nodes"),
    _job_edit("memory-nan", "memory_gb: 256", "memory_gb: .nan", "memory_gb"),
    _job_edit("memory-inf", "memory_gb: 256", "memory_gb: .inf", "memory_gb"),
    _job_edit("memory-negative", "memory_gb: 256", "memory_gb: -1", "memory_gb"),
    _job_edit("memory-huge", "memory_gb: 256", "memory_gb: 1e300", "memory_gb"),
    _job_edit("gpus-beyond-64-bits", "gpus: 4", f"gpus: {BIG}", "gpus"),
    _job_edit("gpus-fraction", "gpus: 4", "gpus: 0.5", "gpus"),
    _job_edit("runtime-zero", "runtime_s: 7200", "runtime_s: 0", "runtime_s"),
    _job_edit("runtime-negative", "runtime_s: 7200", "runtime_s: -60", "runtime_s"),
    _job_edit("runtime-nan", "runtime_s: 7200", "runtime_s: .nan", "runtime_s"),
    _job_edit("runtime-inf", "runtime_s: 7200", "runtime_s: .inf", "runtime_s"),
    _job_edit("runtime-overflow", "runtime_s: 7200", "runtime_s: 1e400", "runtime_s"),
    _job_edit("storage-negative", "storage_gb: 12000", "storage_gb: -5", "storage_gb"),
    _job_edit("kind-unknown", "kind: ai", "kind: bitcoin", "kind"),
    _job_edit("job-id-empty", "id: h-01", "id: ''", "id"),
    _job_edit("job-id-duplicate", "id: h-02", "id: h-01", "h-01"),
    _job_edit("job-unknown-field", "kind: ai,", "kind: ai, colour: red,", "colour"),
    _job_edit("seed-negative", "seed: 11", "seed: -1", "seed"),
    _job_edit("seed-beyond-64-bits", "seed: 11", f"seed: {BIG}", "seed"),
    _job_edit("seed-true", "seed: 11", "seed: true", "seed"),
    _job_edit("seed-string", "seed: 11", "seed: eleven", "seed"),
    _job_edit("provider-unknown", "provider: auto", "provider: gpt5", "provider"),
    _job_edit("name-traversal", "name: healthy", "name: ../../escaped", "name"),
    _job_edit("name-400-characters", "name: healthy", "name: " + "n" * 400, "name"),
    _job_edit("name-with-space", "name: healthy", "name: two words", "name"),
    _job_edit("name-with-slash", "name: healthy", "name: a/b", "name"),
    _job_edit("name-hidden", "name: healthy", "name: .hidden", "name"),
    _job_edit("unknown-top-level-field", "seed: 11", "seed: 11\ncolour: red", "colour"),
    _job_edit("interval-zero", "job_interval_s: 1800", "job_interval_s: 0", "job_interval_s"),
    _job_edit("interval-nan", "job_interval_s: 1800", "job_interval_s: .nan", "job_interval_s"),
    _job_edit("cluster-missing", "cluster: clusters/specialists.yaml", "cluster: clusters/nope.yaml", "nope.yaml"),
    _job_edit("cluster-outside", "cluster: clusters/specialists.yaml", "cluster: ../../../../../etc/passwd",
              "passwd"),
    _job_edit("cluster-device", "cluster: clusters/specialists.yaml", "cluster: /dev/zero", "zero"),
    _job_edit("cluster-a-list", "cluster: clusters/specialists.yaml", "cluster: [1, 2]", "cluster"),
]


def _cluster_edit(case_id: str, old: str, new: str, says: str) -> Case:
    return Case(f"cluster-{case_id}", RUN, says, edits=((CLUSTER, old, new),))


def _cluster_text() -> str:
    return (PROJECT_ROOT / CLUSTER).read_text(encoding="utf-8")


CLUSTER_FIELDS = [
    _cluster_edit("count-zero", "count: 6, prefix: gpu-", "count: 0, prefix: gpu-", "count"),
    _cluster_edit("count-beyond-64-bits", "count: 6, prefix: gpu-", f"count: {BIG}, prefix: gpu-", "count"),
    _cluster_edit("count-true", "count: 6, prefix: gpu-", "count: true, prefix: gpu-", "count"),
    _cluster_edit("prefix-empty", "prefix: gpu-,", "prefix: '',", "prefix"),
    _cluster_edit("load-backwards", "load: [0.05, 0.35]}", "load: [0.9, 0.1]}", "load"),
    _cluster_edit("load-above-one", "load: [0.05, 0.35]}", "load: [0.5, 3]}", "load"),
    _cluster_edit("specialty-unknown", "specialty: gpu", "specialty: quantum-foam", "specialty"),
    _cluster_edit("pool-unknown", "pool: cpu-pool}", "pool: nowhere}", "nowhere"),
    _cluster_edit("cores-per-node-true", "per_node: {cores: 64,", "per_node: {cores: true,", "cores"),
    Case("cluster-too-few-agents", RUN, "agents", edits=(
        (CLUSTER, "  - {id: storage-agent, specialty: storage, pool: io-pool}\n", ""),
        (CLUSTER, "  - {id: memory-agent, specialty: memory, pool: mem-pool}\n", ""))),
    _cluster_edit("duplicate-agent", "id: storage-agent", "id: gpu-agent", "unique"),
]


def _experiment_edit(case_id: str, old: str, new: str, says: str) -> Case:
    return Case(f"experiment-{case_id}", ("--experiment", EXPERIMENT, "--out", "exp"), says,
                edits=((EXPERIMENT, old, new),))


EXPERIMENT_FIELDS = [
    _experiment_edit("agents-zero", "agents: 7", "agents: 0", "agents"),
    _experiment_edit("agents-true", "agents: 7", "agents: true", "agents"),
    _experiment_edit("agents-beyond-64-bits", "agents: 7", f"agents: {BIG}", "agents"),
    _experiment_edit("agents-string", "agents: 7", "agents: seven", "agents"),
    _experiment_edit("byzantine-negative", "byzantine: 2", "byzantine: -1", "byzantine"),
    _experiment_edit("byzantine-beyond-tolerance", "byzantine: 2", "byzantine: 5", "byzantine"),
    _experiment_edit("jobs-zero", "jobs: 5", "jobs: 0", "jobs"),
    _experiment_edit("jobs-beyond-64-bits", "jobs: 5", f"jobs: {BIG}", "jobs"),
    _experiment_edit("jobs-absurd", "jobs: 5", "jobs: 1000000000000", "jobs"),
    _experiment_edit("repetitions-zero", "repetitions: 3", "repetitions: 0", "repetitions"),
    _experiment_edit("repetitions-beyond-64-bits", "repetitions: 3", f"repetitions: {BIG}", "repetitions"),
    _experiment_edit("seed-negative", "seed: 0", "seed: -4", "seed"),
    _experiment_edit("seed-beyond-64-bits", "seed: 0", f"seed: {BIG}", "seed"),
    _experiment_edit("method-unknown", "methods: [pbft, tendermint, multi_paxos]", "methods: [pbft, blockchain]",
                     "blockchain"),
    _experiment_edit("methods-empty", "methods: [pbft, tendermint, multi_paxos]", "methods: []", "methods"),
    _experiment_edit("behaviour-unknown", "byzantine_behaviours: [equivocate, alter]",
                     "byzantine_behaviours: [teleport]", "teleport"),
    _experiment_edit("agent-mode-unknown", "agent_mode: heuristic", "agent_mode: magic", "agent_mode"),
    _experiment_edit("faults-missing", "faults: null", "faults: faults/nope.yaml", "nope.yaml"),
    _experiment_edit("intensity-unknown", "intensity: null", "intensity: apocalyptic", "intensity"),
    _experiment_edit("fault-horizon-negative", "fault_horizon: 100", "fault_horizon: -1", "fault_horizon"),
    _experiment_edit("max-time-nan", "max_time: 5000", "max_time: .nan", "max_time"),
    _experiment_edit("max-time-inf", "max_time: 5000", "max_time: .inf", "max_time"),
    _experiment_edit("crash-downtime-negative", "crash_downtime: 40", "crash_downtime: -5", "crash_downtime"),
    _experiment_edit("oversized-every-true", "oversized_every: 5", "oversized_every: true", "oversized_every"),
    _experiment_edit("cluster-missing", "cluster: ../clusters/specialists.yaml", "cluster: ../clusters/nope.yaml",
                     "nope.yaml"),
    _experiment_edit("unknown-field", "seed: 0", "seed: 0\ncolour: red", "colour"),
    _experiment_edit("name-traversal", "name: default", "name: ../../escaped", "name"),
]


def _experiment_file(content: str | bytes | Callable[[Path], None], case_id: str, says: str) -> Case:
    return Case(f"experiment-file-{case_id}", ("--experiment", "scenarios/experiments/hostile.yaml", "--out", "exp"),
                says, files={"scenarios/experiments/hostile.yaml": content})


EXPERIMENT_FILES = [
    _experiment_file("", "empty", "hostile.yaml"),
    _experiment_file("# nothing\n", "only-comments", "hostile.yaml"),
    _experiment_file("- pbft\n", "a-list", "mapping"),
    _experiment_file(b"name: caf\xe9\n", "latin-1", "UTF-8"),
    _experiment_file("agents: [\n", "bad-yaml", "line"),
    _experiment_file(_deep("[", "]"), "deep", "deep"),
    _experiment_file(_directory, "a-directory", "hostile.yaml"),
    _experiment_file("name: x\nagents: 7\n" + "faults: /dev/zero\n", "faults-device", "zero"),
]


def _evaluation_edit(case_id: str, old: str, new: str, says: str) -> Case:
    return Case(f"evaluation-{case_id}", ("--evaluate", "--config", QUICK, "--out", "eval"), says,
                edits=((QUICK, old, new),))


EVALUATION_FIELDS = [
    _evaluation_edit("repetitions-zero", "repetitions: 3", "repetitions: 0", "repetitions"),
    _evaluation_edit("repetitions-beyond-64-bits", "repetitions: 3", f"repetitions: {BIG}", "repetitions"),
    _evaluation_edit("repetitions-true", "repetitions: 3", "repetitions: true", "repetitions"),
    _evaluation_edit("seed-beyond-64-bits", "seed: 1\n", f"seed: {BIG}\n", "seed"),
    _evaluation_edit("policy-unknown", "policies: [agents, fcfs, sjf, easy, conservative]", "policies: [agents, lottery]", "lottery"),
    _evaluation_edit("deadline-nan", "deadline_factor: 1.2", "deadline_factor: .nan", "deadline_factor"),
    _evaluation_edit("deadline-zero", "deadline_factor: 1.2", "deadline_factor: 0", "deadline_factor"),
    _evaluation_edit("jobs-zero", "jobs: 100", "jobs: 0", "jobs"),
    _evaluation_edit("jobs-true", "jobs: 100", "jobs: true", "jobs"),
    _evaluation_edit("jobs-beyond-64-bits", "jobs: 100", f"jobs: {BIG}", "jobs"),
    _evaluation_edit("agents-zero", "agents: 10 ", "agents: 0 ", "agents"),
    _evaluation_edit("load-negative", "load: 0.8", "load: -0.8", "load"),
    _evaluation_edit("load-inf", "load: 0.8", "load: .inf", "load"),
    _evaluation_edit("failure-rate-above-one", "failure_rate: 0.15", "failure_rate: 2", "failure_rate"),
    _evaluation_edit("pattern-unknown", "pattern: random", "pattern: sunspots", "pattern"),
    _evaluation_edit("protocol-unknown", "protocol: pbft", "protocol: smoke-signals", "protocol"),
    _evaluation_edit("hop-delay-negative", "hop_delay: 0.01", "hop_delay: -0.01", "hop_delay"),
    _evaluation_edit("unknown-field", "seed: 1\n", "seed: 1\ncolour: red\n", "colour"),
]


def _evaluation_file(content: str | bytes | Callable[[Path], None], case_id: str, says: str) -> Case:
    return Case(f"evaluation-file-{case_id}", ("--evaluate", "--config", "hostile.yaml", "--out", "eval"), says,
                files={"hostile.yaml": content})


EVALUATION_FILES = [
    _evaluation_file("", "empty", "hostile.yaml"),
    _evaluation_file("[]\n", "a-list", "mapping"),
    _evaluation_file(b"name: \xc3\x28\n", "bad-utf-8", "UTF-8"),
    _evaluation_file("base: {jobs: [\n", "bad-yaml", "line"),
    _evaluation_file(_deep("{a: ", "}"), "deep", "deep"),
    _evaluation_file(_fifo, "a-fifo", "hostile.yaml"),
]


def _trace(content: str | bytes | Callable[[Path], None], case_id: str, says: str, name: str = "hostile.swf") -> Case:
    return Case(f"trace-{case_id}", ("--simulate", "--trace", name, "--policy", "fcfs", "--out", "sim"), says,
                files={name: content})


def _swf_line(**fields: str) -> str:
    """One SWF job line: 18 fields, the given ones replaced (job, submit, wait, run, procs, ...)."""
    order = ["job", "submit", "wait", "run", "procs", "cpu", "mem", "req_procs", "req_time", "req_mem", "status",
             "user", "group", "app", "queue", "partition", "preceding", "think"]
    values = {"job": "1", "submit": "0", "wait": "0", "run": "100", "procs": "4", "req_procs": "4",
              "req_time": "200", "status": "1"}
    values |= fields
    return " ".join(values.get(name, "-1") for name in order) + "\n"


def _truncated_gz(path: Path) -> None:
    path.write_bytes(gzip.compress((_swf_line() * 2000).encode())[:200])


TRACES = [
    _trace("", "empty", "hostile.swf"),
    _trace("; only a header comment\n", "only-comments", "hostile.swf"),
    _trace(b"\xff\xfe\x00\x01 junk \x80\x81\n", "binary-junk", "hostile.swf"),
    _trace(b"\x1f\x8b\x08\x00 this is not really gzip", "junk-gz", "hostile.swf.gz", name="hostile.swf.gz"),
    _trace(_truncated_gz, "truncated-gz", "hostile.swf.gz", name="hostile.swf.gz"),
    _trace(gzip.compress(b"\xff\xfe\x80 not text at all"), "gz-of-binary", "hostile.swf.gz", name="hostile.swf.gz"),
    _trace(_swf_line(run="nan"), "runtime-nan", "hostile.swf"),
    _trace(_swf_line(run="inf"), "runtime-inf", "hostile.swf"),
    _trace(_swf_line(run="1e400"), "runtime-overflow", "hostile.swf"),
    _trace(_swf_line(procs=BIG, req_procs=BIG), "processors-beyond-64-bits", "hostile.swf"),
    _trace(_swf_line(submit="nan"), "submit-nan", "hostile.swf"),
    _trace(_swf_line(submit="-inf"), "submit-minus-inf", "hostile.swf"),
    _trace("1 2 3\n", "too-few-fields", "hostile.swf"),
    _trace("a b c d e f g h i j k l m n o p q r\n", "words", "hostile.swf"),
    _trace(_directory, "a-directory", "hostile.swf"),
    _trace(_fifo, "a-fifo", "hostile.swf"),
]


def _flags(case_id: str, says: str, *args: str) -> Case:
    return Case(f"flags-{case_id}", args, says)


FLAGS = [
    _flags("agents-zero-experiment", "--agents", "--experiment", "--agents", "0"),
    _flags("agents-zero-simulate", "--agents", "--simulate", "--trace", "x.swf", "--policy", "agents", "--agents", "0"),
    _flags("agents-beyond-64-bits", "--agents", "--experiment", "--agents", BIG),
    _flags("jobs-negative", "--jobs", "--experiment", "--jobs", "-3"),
    _flags("jobs-absurd", "--jobs", "--experiment", "--jobs", "1000000000000"),
    _flags("repetitions-zero", "--repetitions", "--experiment", "--repetitions", "0"),
    _flags("byzantine-negative", "--byzantine", "--experiment", "--byzantine", "-1"),
    _flags("crash-negative", "--crash", "--experiment", "--crash", "-1"),
    _flags("workers-zero", "--workers", "--evaluate", "--workers", "0"),
    _flags("seed-negative", "--seed", *RUN, "--seed", "-5"),
    _flags("seed-word", "--seed", *RUN, "--seed", "seven"),
    _flags("seed-beyond-64-bits", "--seed", *RUN, "--seed", BIG),
    _flags("seed-float", "--seed", *RUN, "--seed", "1.5"),
    _flags("check-and-interactive", "not allowed", "--check", "--interactive"),
    _flags("experiment-and-simulate", "not allowed", "--experiment", "--simulate"),
    _flags("runs-and-evaluate", "not allowed", "--runs", "--evaluate"),
    _flags("scenario-and-experiment", "--scenario does not go with --experiment",
           "--scenario", "healthy", "--experiment"),
    _flags("setup-env-and-check", "not allowed", "--setup-env", "--check"),
    _flags("provider-unknown", "--provider", *RUN[:2], "--provider", "gpt5"),
    _flags("method-unknown", "blockchain", "--experiment", "--methods", "pbft,blockchain"),
    _flags("methods-empty", "methods", "--experiment", "--methods", ","),
    _flags("agent-mode-unknown", "--agent-mode", "--experiment", "--agent-mode", "magic"),
    _flags("intensity-unknown", "--intensity", "--experiment", "--intensity", "apocalyptic"),
    _flags("faults-missing", "nope.yaml", "--experiment", "--faults", "nope.yaml"),
    _flags("policy-unknown", "--policy", "--simulate", "--trace", "x.swf", "--policy", "lottery"),
    _flags("simulate-without-trace", "--trace", "--simulate", "--policy", "fcfs"),
    _flags("trace-missing", "nope.swf", "--simulate", "--trace", "nope.swf", "--policy", "fcfs"),
    _flags("scenario-missing", "nope", "--scenario", "nope"),
    _flags("scenario-traversal", "../../etc/passwd", "--scenario", "../../etc/passwd"),
    _flags("scenario-name-400", "scenario name", "--scenario", "n" * 400),
    _flags("scenario-empty-name", "scenario", "--scenario", ""),
    _flags("resume-unknown", "no-such-run", "--resume", "no-such-run"),
    _flags("resume-traversal", "..", "--resume", "../../.."),
    _flags("resume-empty", "resume", "--resume", ""),
    _flags("show-unknown", "no-such-run", "--show", "no-such-run"),
    _flags("show-traversal", "..", "--show", "../../etc"),
    _flags("record-heuristic", "--record", *RUN, "--record"),
    _flags("record-to-without-record", "--record", *RUN, "--record-to", "x.yaml"),
    _flags("force-without-record", "--force", *RUN, "--force"),
    _flags("quick-without-evaluate", "--quick", *RUN, "--quick"),
    _flags("policy-without-simulate", "--policy", *RUN, "--policy", "fcfs"),
    _flags("methods-with-scenario", "--methods", *RUN, "--methods", "pbft"),
    _flags("workers-with-scenario", "--workers", *RUN, "--workers", "2"),
    _flags("trace-with-experiment", "--trace", "--experiment", "--trace", "x.swf"),
    _flags("config-with-scenario", "--config", *RUN, "--config", "x.yaml"),
    _flags("unknown-flag", "--colour", "--colour", "red"),
]


def _env(case_id: str, says: str, values: dict[str, str], args: tuple[str, ...] = RUN,
         files: Files | None = None) -> Case:
    return Case(f"env-{case_id}", args, says, env=values, files=files or {})


ENVIRONMENT = [
    _env("timeout-negative", "LLM_SCHED_TIMEOUT", {"LLM_SCHED_TIMEOUT": "-1"}),
    _env("timeout-word", "LLM_SCHED_TIMEOUT", {"LLM_SCHED_TIMEOUT": "soon"}),
    _env("timeout-nan", "LLM_SCHED_TIMEOUT", {"LLM_SCHED_TIMEOUT": "nan"}),
    _env("timeout-inf", "LLM_SCHED_TIMEOUT", {"LLM_SCHED_TIMEOUT": "inf"}),
    _env("max-attempts-zero", "LLM_SCHED_MAX_ATTEMPTS", {"LLM_SCHED_MAX_ATTEMPTS": "0"}),
    _env("max-attempts-beyond-64-bits", "LLM_SCHED_MAX_ATTEMPTS", {"LLM_SCHED_MAX_ATTEMPTS": BIG}),
    _env("concurrency-zero", "LLM_SCHED_CONCURRENCY", {"LLM_SCHED_CONCURRENCY": "0"}),
    _env("breaker-zero", "LLM_SCHED_BREAKER_FAILURES", {"LLM_SCHED_BREAKER_FAILURES": "0"}),
    _env("deadline-negative", "LLM_SCHED_RUN_DEADLINE", {"LLM_SCHED_RUN_DEADLINE": "-5"}),
    _env("backoff-nan", "LLM_SCHED_BACKOFF_INITIAL", {"LLM_SCHED_BACKOFF_INITIAL": "nan"}),
    _env("provider-unknown", "LLM_SCHED_PROVIDER", {"LLM_SCHED_PROVIDER": "gpt5"}, args=RUN[:2]),
    _env("ollama-host-ftp", "OLLAMA_HOST", {"OLLAMA_HOST": "ftp://example.org"},
         args=("--scenario", "healthy", "--provider", "ollama")),
    _env("ollama-host-empty-host", "OLLAMA_HOST", {"OLLAMA_HOST": "http://"},
         args=("--scenario", "healthy", "--provider", "ollama")),
    _env("openai-url-word", "OPENAI_BASE_URL", {"OPENAI_BASE_URL": "not a url", "OPENAI_MODEL": "m"},
         args=("--scenario", "healthy", "--provider", "openai")),
    _env("openai-without-model", "OPENAI_MODEL", {"OPENAI_BASE_URL": "http://127.0.0.1:9"},
         args=("--scenario", "healthy", "--provider", "openai")),
    _env("local-model-missing", "LLM_SCHED_LOCAL_MODEL", {"LLM_SCHED_LOCAL_MODEL": "/nonexistent/model.gguf"},
         args=("--scenario", "healthy", "--provider", "local")),
    _env("local-model-not-gguf", "llama",  # "llama.cpp could not load", or without the extra "needs llama-cpp-python"
         {"LLM_SCHED_LOCAL_MODEL": "fake.gguf"},
         args=("--scenario", "healthy", "--provider", "local"), files={"fake.gguf": "not a model"}),
    _env("local-threads-zero", "LLM_SCHED_LOCAL_THREADS", {"LLM_SCHED_LOCAL_THREADS": "0"}),
    _env("local-context-negative", "LLM_SCHED_LOCAL_CONTEXT", {"LLM_SCHED_LOCAL_CONTEXT": "-1"}),
    _env("ledger-a-directory", "ledger", {"LLM_SCHED_LEDGER": "adir"}, files={"adir/x": "x"}),
    _env("ledger-a-text-file", "notes.db", {"LLM_SCHED_LEDGER": "notes.db"}, files={"notes.db": "my notes\n" * 50}),
    _env("ledger-zeros", "zeros.db", {"LLM_SCHED_LEDGER": "zeros.db"}, files={"zeros.db": bytes(8192)}),
    _env("runs-dir-a-file", "afile", {"LLM_SCHED_RUNS_DIR": "afile"}, files={"afile": "x"}),
    _env("scenarios-dir-missing", "nowhere", {"LLM_SCHED_SCENARIOS_DIR": "nowhere"}),
    _env("dotenv-latin-1", ".env", {}, files={".env": b"LLM_SCHED_PROVIDER=caf\xe9\n"}),
    _env("dotenv-bad-line", ".env", {}, files={".env": "LLM_SCHED_PROVIDER heuristic\n"}),
    _env("dotenv-bad-concurrency", "LLM_SCHED_CONCURRENCY", {}, files={".env": "LLM_SCHED_CONCURRENCY=-3\n"}),
    _env("dotenv-a-directory", ".env", {}, files={".env": _directory}),
    _env("check-dotenv-latin-1", ".env", {}, args=("--check",), files={".env": b"OPENAI_API_KEY=\xe9\xe9\n"}),
]


def _cassette(case_id: str, content: str | bytes | Callable[[Path], None], says: str) -> Case:
    return Case(f"cassette-{case_id}", ("--scenario", "healthy", "--provider", "replay", "--no-pause"), says,
                files={"scenarios/cassettes/healthy-local.yaml": content})


def _cassette_edit(case_id: str, old: str, new: str, says: str) -> Case:
    return Case(f"cassette-{case_id}", ("--scenario", "healthy", "--provider", "replay", "--no-pause"), says,
                edits=(("scenarios/cassettes/healthy-local.yaml", old, new),))


CASSETTES = [
    _cassette("empty", "", "healthy-local.yaml"),
    _cassette("a-list", "[1, 2]\n", "healthy-local.yaml"),
    _cassette("latin-1", b"metadata: caf\xe9\n", "UTF-8"),
    _cassette("bad-yaml", "metadata: {\n", "healthy-local.yaml"),
    _cassette("deep", _deep("[", "]"), "deep"),
    _cassette("a-directory", _directory, "healthy-local.yaml"),
    _cassette_edit("other-seed", "seed: 11", "seed: 12", "seed"),
    _cassette_edit("other-format", "llm-sched cassette 2", "llm-sched cassette 99", "format"),
]


def _answers(case_id: str, says: str, *replies: Reply) -> Case:
    return Case(f"answers-{case_id}", ("--scenario", "healthy", "--provider", "ollama", "--no-pause"), says,
                server=replies)


ANSWERS = [
    _answers("server-error", "ollama", Reply.status(500)),
    _answers("unauthorized-echo", "ollama", Reply.status(401, body="Authorization: Bearer sk-echoed-secret-key-123")),
    _answers("not-json", "ollama", Reply.text("I would rather not answer in JSON.")),
    _answers("html", "ollama", Reply.status(502, body="<html><body>Bad gateway</body></html>")),
    _answers("escape-sequences", "ollama", Reply.text("\x1b]0;pwned\x07\x1b[2J{\"decision\": \"reject\"}")),
    _answers("wrong-shape", "ollama", Reply.json({"option_id": "Z", "score": 7, "reasoning": 5})),
    _answers("rate-limited", "ollama", Reply.status(429, retry_after=0.1)),
]

CASES = [*SCENARIO_FILES, *SCENARIO_FIELDS, *CLUSTER_FIELDS, *EXPERIMENT_FIELDS, *EXPERIMENT_FILES,
         *EVALUATION_FIELDS, *EVALUATION_FILES, *TRACES, *FLAGS, *ENVIRONMENT, *CASSETTES, *ANSWERS]


def test_there_are_at_least_150_distinct_cases() -> None:
    assert len(CASES) >= 150 and len({c.id for c in CASES}) == len(CASES)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[StandIn | None]:
    case: Case = request.param
    if case.server is None:
        yield None
        return
    with StandIn() as stand_in:
        stand_in.answer_probes = False  # a broken server answers the readiness probe as badly as the rest
        stand_in.default = case.server[-1]
        stand_in.script(*case.server)
        yield stand_in


def _run(case: Case, work: Path, server: StandIn | None, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    env = dict(case.env)
    if server is not None:
        env |= {"OLLAMA_HOST": server.url, "OLLAMA_MODEL": server.models[0]}
    with _environment(work, env):
        try:
            code = cli.main(list(case.args))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("case", "server"), [(c, c) for c in CASES], ids=[c.id for c in CASES], indirect=["server"])
def test_hostile_input_ends_in_one_clear_message(case: Case, server: StandIn | None, work: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before_ledger, before_files = _ledger_dump(work), _stored_files(work)
    _prepare(case, work)
    code, out, err = _run(case, work, server, capsys)
    text = out + err
    assert code in (1, 2), f"exit {code}\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    message = [line for line in lines if "error" in line.lower() or line.startswith("not ready")] or lines
    if lines and lines[0].startswith("usage:"):  # argparse: its usage, then one error line
        assert len(message) == 1, err
    else:
        assert len(lines) == 1, f"expected one message line, got:\n{err}"
    assert case.says.lower() in message[0].lower(), f"{case.says!r} not in {message[0]!r}"
    assert "\x1b" not in text and "sk-echoed-secret" not in text
    assert _ledger_dump(work) == before_ledger, "the ledger changed"
    assert _stored_files(work) == before_files, "a stored run's files changed"


def test_the_stored_run_is_complete_before_the_cases(stored: Path) -> None:
    dump = _ledger_dump(stored)
    assert any("'completed'" in line for line in dump if line.startswith('INSERT INTO "runs"'))
    events = next((stored / "runs").rglob("events.jsonl"))
    assert all(json.loads(line) for line in events.read_text(encoding="utf-8").splitlines())
