"""Reading what Slurm prints, building what it reads, and the local cluster's command line on bad
input: none of it needs Slurm installed (the samples are shaped as Slurm 22.05 prints them)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_sched.core.model import Resources
from llm_sched.errors import UserError
from llm_sched.execution.slurm_commands import (
    SlurmError,
    expand_hostlist,
    gres_gpus,
    job_from_scontrol,
    job_from_squeue,
    node_from_sinfo,
    parse_key_values,
    run_slurm,
    sanitize_job_name,
    sbatch,
    set_node_state,
)
from llm_sched.execution.slurm_local import (
    DEFAULT_CLUSTER_FILE,
    PoolGroup,
    check_state_dir,
    cluster_name,
    default_counts,
    gres_conf,
    load_pool_groups,
    parse_pool_counts,
    slurm_conf,
    spec_from_pools,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm-local"
GPU = Resources(cores=64, memory_gb=512, gpus=4, storage_gb=2000)
MEM = Resources(cores=64, memory_gb=2048, gpus=0, storage_gb=2000)
GROUPS = [PoolGroup("gpu-pool", "gpu-", GPU, 6), PoolGroup("mem-pool", "mem-", MEM, 6)]


# --- host lists, GRES, job names ------------------------------------------------------------------


@pytest.mark.parametrize(("hostlist", "names"), [
    ("gpu-[01-03],mem-01", ["gpu-01", "gpu-02", "gpu-03", "mem-01"]),
    ("gpu-[01-02,07]", ["gpu-01", "gpu-02", "gpu-07"]),
    ("gpu-[08-11]", ["gpu-08", "gpu-09", "gpu-10", "gpu-11"]),
    ("r[1-2]n[8-9]", ["r1n8", "r1n9", "r2n8", "r2n9"]),
    ("node[098-101]", ["node098", "node099", "node100", "node101"]),
    ("mem-01", ["mem-01"]),
    ("", []),
    ("(null)", []),
])
def test_hostlists_expand_as_scontrol_show_hostnames_does(hostlist: str, names: list[str]) -> None:
    assert expand_hostlist(hostlist) == names


@pytest.mark.parametrize("bad", ["gpu-[a-b]", "gpu-[03-01]", "gpu-[1-999999]"])
def test_a_malformed_hostlist_is_a_clear_error(bad: str) -> None:
    with pytest.raises(SlurmError, match="malformed host list"):
        expand_hostlist(bad)


@pytest.mark.parametrize(("gres", "gpus"), [
    ("gpu:4", 4), ("", 0), ("(null)", 0), ("nic:2", 0), ("gpu", 1), ("gpu:a100", 1),
    ("gpu:a100:2,gpu:v100:3", 5), ("gpu:4(S:0-1)", 4), ("gpu:tesla:2(S:0,1),nic:1", 2), ("gpu:2K", 2048),
])
def test_gpus_are_counted_from_a_gres_string(gres: str, gpus: int) -> None:
    assert gres_gpus(gres) == gpus


@given(st.text(max_size=300))
def test_a_sanitized_job_name_is_plain_short_and_never_empty(text: str) -> None:
    name = sanitize_job_name(text)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name)


def test_a_job_name_keeps_its_plain_characters() -> None:
    assert sanitize_job_name("train-gpt_2.5") == "train-gpt_2.5"
    assert sanitize_job_name("a; rm -rf / $(reboot)\n--wrap=x") == "a_rm_-rf_reboot_--wrap_x"
    assert sanitize_job_name("") == "job"


# --- sinfo, squeue, scontrol output ---------------------------------------------------------------


def _sinfo_node(**changes: object) -> dict[str, object]:
    """A node of ``sinfo --json`` (22.05, openapi v0.0.38), with the fields read here."""
    node: dict[str, object] = {"name": "gpu-01", "partitions": ["gpu-pool", "all"], "cpus": 64, "cores": 64,
                               "sockets": 1, "real_memory": 524288, "gres": "gpu:4", "gres_used": "gpu:0",
                               "temporary_disk": 2048000, "state": "idle", "state_flags": [], "reason": ""}
    return node | changes


def test_a_sinfo_node_gives_its_resources_partitions_and_state() -> None:
    node = node_from_sinfo(_sinfo_node())
    assert (node.name, node.partitions, node.cores, node.memory_mb, node.gpus, node.tmp_disk_mb) == \
        ("gpu-01", ("gpu-pool", "all"), 64, 524288, 4, 2048000)
    assert node.state == "idle" and node.usable


@pytest.mark.parametrize(("state", "flags", "named", "usable"), [
    ("mixed", [], "mixed", True),
    ("allocated", [], "allocated", True),
    ("idle", ["DRAIN"], "drained", False),
    ("mixed", ["DRAIN"], "draining", False),
    ("down", [], "down", False),
    ("down", ["DRAIN"], "down", False),
    ("idle", ["NOT_RESPONDING"], "idle", False),
    ("unknown", [], "unknown", False),
])
def test_node_states_read_as_sinfo_names_them(state: str, flags: list[str], named: str, usable: bool) -> None:
    node = node_from_sinfo(_sinfo_node(state=state, state_flags=flags, reason="maintenance\x1b[2J"))
    assert (node.state, node.usable) == (named, usable)
    assert node.flags == tuple(f.lower() for f in flags)
    assert "\x1b" not in node.reason


def test_a_squeue_job_exit_code_is_read_from_the_wait_status() -> None:
    raw = {"job_id": 5, "name": "wrap", "job_state": "FAILED", "nodes": "gpu-[01-02]", "exit_code": 3 << 8,
           "partition": "gpu-pool", "state_reason": "NonZeroExitCode", "user_name": "root"}
    job = job_from_squeue(raw)
    assert (job.job_id, job.state, job.nodes, job.exit_code, job.signal, job.ended) == \
        (5, "FAILED", ("gpu-01", "gpu-02"), 3, 0, True)
    running = job_from_squeue(raw | {"job_state": "RUNNING", "exit_code": 0, "state_reason": "None"})
    assert (running.exit_code, running.reason, running.ended) == (None, "", False)


def test_a_scontrol_job_line_is_read() -> None:
    line = ("JobId=1 JobName=t1 UserId=root(0) GroupId=root(0) MCS_label=N/A JobState=NODE_FAIL Reason=NodeDown "
            "Dependency=(null) Requeue=0 ExitCode=0:15 Partition=gpu-pool AllocNode:Sid=vm:10266 "
            "ReqNodeList=gpu-[01-02] NodeList=gpu-[01-02] TRES=cpu=2,mem=2G,node=2,billing=2 "
            "NtasksPerN:B:S:C=1:0:*:* Command=/work/my job.sh WorkDir=/tmp/s1 TresPerNode=gres:gpu:2")
    job = job_from_scontrol(line)
    assert (job.job_id, job.name, job.state, job.reason, job.nodes, job.exit_code, job.signal, job.user) == \
        (1, "t1", "NODE_FAIL", "NodeDown", ("gpu-01", "gpu-02"), 0, 15, "root")
    fields = parse_key_values(line)
    assert fields["Command"] == "/work/my job.sh"
    assert fields["TRES"] == "cpu=2,mem=2G,node=2,billing=2"
    assert job_from_scontrol("JobId=2 JobName=x JobState=PENDING NodeList=(null) ExitCode=0:0").nodes == ()


# --- running commands -------------------------------------------------------------------------------


def test_a_missing_command_is_named() -> None:
    with pytest.raises(SlurmError, match="`no-such-slurm-command` is not installed"):
        run_slurm(["no-such-slurm-command", "--json"])


def test_a_failing_command_is_named_with_what_it_said() -> None:
    with pytest.raises(SlurmError, match=r"`sh -c .*` failed \(exit 3\): sbatch: error: boom"):
        run_slurm(["sh", "-c", "echo 'sbatch: error: boom' >&2; exit 3"])


def test_a_slurm_conf_that_is_no_file_is_named_before_any_command_runs(tmp_path: Path) -> None:
    missing = tmp_path / "missing.conf"
    with pytest.raises(SlurmError, match=f"SLURM_CONF names {missing}, which is not a file"):
        run_slurm(["sleep", "60"], env={"SLURM_CONF": str(missing)})  # not run: it would take the timeout


def _fake_command(folder: Path, name: str, answer: str) -> Path:
    """A stand-in for a Slurm command that records its arguments and stdin, then prints ``answer``."""
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{folder}/{name}.args"\ncat > "{folder}/{name}.stdin"\n'
                    f'echo "{answer}"\n', encoding="utf-8")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return folder


def test_sbatch_asks_for_exactly_the_nodes_and_resources_given(tmp_path: Path) -> None:
    bin_dir = _fake_command(tmp_path / "bin", "sbatch", "42;cluster")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    script = "#!/bin/sh\necho hi\n"
    job = sbatch(script, name="job 1; $(x)", nodelist=["gpu-01", "gpu-02"], nodes=2, ntasks_per_node=8, mem_mb=0,
                 gpus=2, output=tmp_path / "out.txt", env=env, extra=["--tmp=100M"])
    assert job == 42
    args = (bin_dir / "sbatch.args").read_text().splitlines()
    assert args == ["--parsable", "--job-name=job_1_x", "--nodelist=gpu-01,gpu-02", "--nodes=2",
                    "--ntasks-per-node=8", "--mem=1M", "--no-requeue", f"--output={tmp_path / 'out.txt'}",
                    "--gres=gpu:2", "--tmp=100M"]
    assert (bin_dir / "sbatch.stdin").read_text() == script


@pytest.mark.parametrize("node", ["gpu-01 --uid=0", "a,b", "", "-x"])
def test_a_node_name_that_is_not_plain_is_refused(tmp_path: Path, node: str) -> None:
    with pytest.raises(SlurmError, match="invalid node name"):
        sbatch("#!/bin/sh\n", name="j", nodelist=[node], nodes=1, ntasks_per_node=1, mem_mb=1, gpus=0,
               output=tmp_path / "o", env={"PATH": str(tmp_path)})
    with pytest.raises(SlurmError, match="invalid node name"):
        set_node_state(node, "down", "x", env={"PATH": str(tmp_path)})


def test_set_node_state_passes_one_line_reason(tmp_path: Path) -> None:
    bin_dir = _fake_command(tmp_path / "bin", "scontrol", "")
    set_node_state("gpu-01", "down", "disk\nfull\x1b[2J", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert (bin_dir / "scontrol.args").read_text().splitlines() == \
        ["update", "nodename=gpu-01", "state=down", "reason=disk full [2J"]


# --- the local cluster's shape and configuration ----------------------------------------------------


def test_nodes_are_dealt_round_robin_over_the_pools_in_file_order() -> None:
    assert default_counts(["a", "b", "c", "d", "e"], 4) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert default_counts(["a", "b"], 5) == {"a": 3, "b": 2}


def test_pool_counts_given_or_dealt() -> None:
    pools = ["gpu-pool", "mem-pool", "cpu-pool"]
    assert parse_pool_counts("gpu-pool=3,mem-pool=1", pools, 4) == {"gpu-pool": 3, "mem-pool": 1}
    assert parse_pool_counts("mem-pool,gpu-pool", pools, 3) == {"gpu-pool": 1, "mem-pool": 2}
    assert parse_pool_counts("gpu-pool=2,cpu-pool", pools, 5) == {"gpu-pool": 2, "cpu-pool": 3}


@pytest.mark.parametrize(("text", "total", "problem"), [
    ("gpu-pool=3,nope=1", 4, "unknown pool 'nope'"),
    ("gpu-pool,mem-pool", 1, "1 nodes cannot cover the 2 pools"),
    ("gpu-pool=3,mem-pool=2", 4, "asks for 5 nodes"),
    ("gpu-pool=0", 1, "at least 1"),
    ("gpu-pool=x", 1, "not a whole number"),
    ("gpu-pool=1,gpu-pool=1", 2, "given twice"),
])
def test_bad_pool_counts_are_named(text: str, total: int, problem: str) -> None:
    with pytest.raises(UserError, match=re.escape(problem)):
        parse_pool_counts(text, ["gpu-pool", "mem-pool"], total)


def test_nodes_are_named_and_sized_as_the_scenario_names_them() -> None:
    spec = spec_from_pools(GROUPS, {"gpu-pool": 3, "mem-pool": 1})
    assert [(n.name, n.partition) for n in spec.nodes] == \
        [("gpu-01", "gpu-pool"), ("gpu-02", "gpu-pool"), ("gpu-03", "gpu-pool"), ("mem-01", "mem-pool")]
    gpu = spec.nodes[0]
    assert (gpu.cores, gpu.memory_mb, gpu.gpus, gpu.tmp_disk_mb) == (64, 512 * 1024, 4, 2000 * 1024)
    assert spec.partitions() == {"gpu-pool": ["gpu-01", "gpu-02", "gpu-03"], "mem-pool": ["mem-01"]}


def test_a_pool_with_several_groups_deals_its_nodes_over_them() -> None:
    groups = [PoolGroup("big", "fat-", MEM, 2), PoolGroup("big", "thin-", GPU, 150)]
    names = [n.name for n in spec_from_pools(groups, {"big": 3}).nodes]
    assert names == ["fat-01", "fat-02", "thin-001"]  # padded as the file's 150 nodes are


def test_the_shipped_cluster_file_gives_its_pools_in_order() -> None:
    groups = load_pool_groups(DEFAULT_CLUSTER_FILE)
    assert [g.pool for g in groups] == ["gpu-pool", "mem-pool", "cpu-pool", "io-pool", "gen-pool"]
    assert groups[0].per_node.gpus > 0


def _conf(tmp_path: Path) -> str:
    spec = spec_from_pools(GROUPS, {"gpu-pool": 3, "mem-pool": 1})
    ports = {n.name: 40001 + i for i, n in enumerate(spec.nodes)}
    return slurm_conf(spec, tmp_path, ctld_port=40000, node_ports=ports, user="root")


def test_slurm_conf_declares_each_node_with_its_resources_and_port(tmp_path: Path) -> None:
    lines = _conf(tmp_path).splitlines()
    node = next(ln for ln in lines if ln.startswith("NodeName=gpu-02 "))
    for part in ("NodeAddr=127.0.0.1", "Port=40002", "CPUs=64", "RealMemory=524288", "TmpDisk=2048000",
                 "Gres=gpu:4"):
        assert part in node.split()
    mem = next(ln for ln in lines if ln.startswith("NodeName=mem-01 "))
    assert "Gres=" not in mem and "RealMemory=2097152" in mem.split()
    assert "PartitionName=gpu-pool Nodes=gpu-01,gpu-02,gpu-03 MaxTime=INFINITE State=UP" in lines
    assert "PartitionName=mem-pool Nodes=mem-01 MaxTime=INFINITE State=UP" in lines
    assert "SlurmctldPort=40000" in lines and "GresTypes=gpu" in lines
    for setting in ("AuthType=auth/none", "CredType=cred/none", "SlurmdParameters=config_overrides",
                    "ProctrackType=proctrack/linuxproc", "SelectType=select/cons_tres", "ReturnToService=1"):
        assert setting in lines


def test_slurm_conf_keeps_every_file_under_its_state_folder(tmp_path: Path) -> None:
    paths = re.findall(r"=(/\S+)", _conf(tmp_path))
    assert paths and all(p.startswith(f"{tmp_path}/") or p == "/bin/true" for p in paths)
    assert "/etc/" not in _conf(tmp_path) and "/var/" not in _conf(tmp_path)


def test_each_state_folder_has_its_own_cluster_name(tmp_path: Path) -> None:
    names = {cluster_name(tmp_path / "a"), cluster_name(tmp_path / "b")}
    assert len(names) == 2
    assert f"ClusterName={cluster_name(tmp_path)}" in _conf(tmp_path).splitlines()


def test_gres_conf_gives_each_gpu_node_device_files(tmp_path: Path) -> None:
    spec = spec_from_pools(GROUPS, {"gpu-pool": 2, "mem-pool": 1})
    lines = (gres_conf(spec, tmp_path) or "").splitlines()
    assert lines == ["AutoDetect=off", f"NodeName=gpu-01 Name=gpu File={tmp_path}/dev/gpu-01/nvidia[0-3]",
                     f"NodeName=gpu-02 Name=gpu File={tmp_path}/dev/gpu-02/nvidia[0-3]"]
    assert gres_conf(spec_from_pools(GROUPS, {"mem-pool": 2}), tmp_path) is None
    spec_no_gpu = spec_from_pools(GROUPS, {"mem-pool": 1})
    conf = slurm_conf(spec_no_gpu, tmp_path, ctld_port=1, node_ports={"mem-01": 2}, user="root")
    assert "GresTypes" not in conf and "gpu-pool" not in conf


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="slurm-unit-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_state_folder_too_deep_for_slurmds_sockets_is_refused() -> None:
    spec = spec_from_pools(GROUPS, {"mem-pool": 1})
    # <dir>/spool/mem-01/mem-01_<job>.<step>, with job and step ids of 10 digits: 107 bytes fit, 108 do not
    room = 107 - len("/tmp/") - len("/spool/mem-01/mem-01_4294967295.4294967295")
    check_state_dir(spec, Path("/tmp") / ("d" * room))
    with pytest.raises(UserError, match=r"too deep: slurmd's job sockets .* up to 108 bytes, more than the 107"):
        check_state_dir(spec, Path("/tmp") / ("d" * (room + 1)))
    with pytest.raises(UserError, match="cannot hold a path with spaces"):
        check_state_dir(spec, Path("/tmp/my cluster"))


def test_a_state_folder_holding_something_else_is_refused(short_tmp: Path) -> None:
    tmp_path = short_tmp  # pytest's own folders may be too deep for slurmd's sockets
    spec = spec_from_pools(GROUPS, {"mem-pool": 1})
    check_state_dir(spec, tmp_path / "new")
    check_state_dir(spec, tmp_path)  # empty
    (tmp_path / "log").mkdir()  # someone's own folder of that name: up would clear it
    with pytest.raises(UserError, match="is not empty and holds no local cluster"):
        check_state_dir(spec, tmp_path)
    (tmp_path / "slurm.conf").write_text(slurm_conf(spec, tmp_path, ctld_port=1, node_ports={"mem-01": 2}))
    check_state_dir(spec, tmp_path)  # a local cluster's folder, from an earlier up


# --- the command line on bad input --------------------------------------------------------------------


def _cli(*args: str, path: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


@pytest.mark.parametrize(("args", "problem"), [
    (["up", "0"], "N must be at least 1 node, got 0"),
    (["up", "many"], "N must be a whole number of nodes, got 'many'"),
    (["up", "4", "--pools", "gpu-pool=3,tpu-pool=1"], "unknown pool 'tpu-pool'"),
    (["up", "1", "--pools", "gpu-pool,mem-pool"], "1 nodes cannot cover the 2 pools given in --pools"),
    (["up", "2", "--cluster", "no/such/cluster.yaml"], "no/such/cluster.yaml: no such cluster file"),
    (["launch"], "invalid choice: 'launch'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], problem: str) -> None:
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert problem in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # nothing started, not even the state folder


def test_without_slurm_up_says_so(tmp_path: Path) -> None:
    bash_only = tmp_path / "bin"
    bash_only.mkdir()
    (bash_only / "bash").symlink_to(Path("/bin/bash").resolve())
    done = _cli("up", "2", "--dir", str(tmp_path / "c"), path=str(bash_only), cwd=tmp_path)
    assert done.returncode == 2
    assert "Slurm is not installed: slurmctld, slurmd" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_module_runs_as_the_script_does() -> None:
    done = subprocess.run([sys.executable, "-m", "llm_sched.execution.slurm_local", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "up" in done.stdout and "down" in done.stdout
