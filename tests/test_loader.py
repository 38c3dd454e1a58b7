"""One loader for every file a user gives: UTF-8, size, depth, integer range, a mapping of fields, strict
and bounded numbers. Each case runs ``python main.py`` as a user would, or the loading function the
command calls, and expects exit 2 with one line naming the file, the field and what is allowed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from llm_sched.config import PROJECT_ROOT
from llm_sched.errors import UserError
from llm_sched.evaluation.config import load_campaign
from llm_sched.experiments.config import load_experiment
from llm_sched.loader import CONFIG_LIMIT, MAX_DEPTH, load_yaml, read_text, validated
from tests.conftest import Cli, CliResult

BIG = "123456789012345678901234"  # beyond 64 bits
LATIN_1 = b"name: caf\xe9\n"  # "caf\xe9" is Latin-1; in UTF-8 the byte at offset 9 starts nothing valid
EXPERIMENT = (PROJECT_ROOT / "scenarios" / "experiments" / "default.yaml").read_text(encoding="utf-8")
CAMPAIGN = (PROJECT_ROOT / "scenarios" / "evaluation" / "quick.yaml").read_text(encoding="utf-8")


def refused(result: CliResult, *fragments: str) -> str:
    """The one-line message of a refused command, checked for exit 2, no traceback and ``fragments``."""
    assert result.code == 2, result.text[-2000:]
    assert "Traceback" not in result.text, result.text[-2000:]
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def error_of(load: Callable[[], object]) -> str:
    with pytest.raises(UserError) as info:
        load()
    return str(info.value)


def scenario_copy(tmp_path: Path) -> Path:
    """A copy of the shipped scenarios (without cassettes) that a test may edit."""
    scenarios = tmp_path / "scenarios"
    shutil.copytree(PROJECT_ROOT / "scenarios", scenarios, ignore=shutil.ignore_patterns("cassettes"))
    return scenarios


# -- the command's file arguments, as a user gives them -------------------------------------------

SCENARIO = ("--scenario", "file.yaml", "--provider", "heuristic", "--no-pause")
EXPERIMENT_RUN = ("--experiment", "file.yaml", "--out", "exp")
CAMPAIGN_RUN = ("--evaluate", "--config", "file.yaml", "--out", "eval")
KINDS = {"scenario": SCENARIO, "experiment": EXPERIMENT_RUN, "campaign": CAMPAIGN_RUN}


@pytest.mark.parametrize("args", KINDS.values(), ids=KINDS.keys())
def test_a_file_that_is_not_utf8_is_named_with_the_offending_byte(cli: Cli, args: tuple[str, ...]) -> None:
    write(cli.cwd, "file.yaml", LATIN_1)
    refused(cli(*args), "file.yaml: not UTF-8 text (invalid continuation byte at byte 9)")


@pytest.mark.parametrize("args", [("--check",), ("--setup-env", "--yes", "--provider", "heuristic")],
                         ids=["check", "setup-env"])
def test_a_dotenv_that_is_not_utf8_is_named_and_left_unchanged(cli: Cli, args: tuple[str, ...]) -> None:
    dotenv = write(cli.cwd, ".env", b"OPENAI_API_KEY=sk-\xe9\xe9-secret\n")
    message = refused(cli(*args), ".env: not UTF-8 text (invalid continuation byte at byte 18)")
    assert "secret" not in message
    assert dotenv.read_bytes() == b"OPENAI_API_KEY=sk-\xe9\xe9-secret\n"


def test_setup_env_does_not_rewrite_a_dotenv_it_cannot_read(tmp_path: Path) -> None:
    from llm_sched.envfile import write_env_file

    dotenv = write(tmp_path, ".env", b"# caf\xe9\nOPENAI_API_KEY=sk-kept\n")
    message = error_of(lambda: write_env_file(dotenv, {"LLM_SCHED_PROVIDER": "ollama"}))
    assert message == f"{dotenv}: not UTF-8 text (invalid continuation byte at byte 5); save it as UTF-8"
    assert dotenv.read_bytes() == b"# caf\xe9\nOPENAI_API_KEY=sk-kept\n"


def test_a_dotenv_that_is_a_directory_is_reported_not_skipped(cli: Cli) -> None:
    (cli.cwd / ".env").mkdir()
    refused(cli("--check"), ".env: is a directory, not a file")


@pytest.mark.parametrize("args", KINDS.values(), ids=KINDS.keys())
@pytest.mark.parametrize("content", ["", "# only a comment\n", "\n\n"], ids=["empty", "comments", "blank-lines"])
def test_an_empty_file_is_an_error_not_the_defaults(cli: Cli, args: tuple[str, ...], content: str) -> None:
    write(cli.cwd, "file.yaml", content)
    refused(cli(*args), "file.yaml: the", "file is empty (or only comments); expected a mapping of")
    assert not (cli.cwd / "exp").exists() and not (cli.cwd / "runs").exists()


@pytest.mark.parametrize(("content", "found"), [("- pbft\n", "a list"), ("pbft\n", "a string"), ("7\n", "a number")])
@pytest.mark.parametrize("kind", ["scenario", "experiment", "campaign"])
def test_a_top_level_list_or_scalar_is_not_a_mapping_of_fields(tmp_path: Path, kind: str, content: str,
                                                               found: str) -> None:
    path = write(tmp_path, "file.yaml", content)
    assert error_of(lambda: load_yaml(path, kind)) == (
        f"{path}: expected a mapping of {kind} fields at the top level, found {found}")


@pytest.mark.parametrize(("nested", "where"), [
    ("[" * 20_000 + "]" * 20_000, "flow lists"),
    ("\n  " + "- " * 20_000 + "1", "block lists on one line"),
    ("{a: " * 20_000 + "1" + "}" * 20_000, "flow mappings"),
    ("\n" + "".join("  " * i + "a:\n" for i in range(1, 200)) + "  " * 200 + "a: 1", "block mappings"),
])
def test_deep_nesting_is_refused_before_anything_is_built(cli: Cli, nested: str, where: str) -> None:
    write(cli.cwd, "file.yaml", f"description: {where}\nmethods: {nested}\n")
    refused(cli(*EXPERIMENT_RUN), "file.yaml, line", f"nested deeper than {MAX_DEPTH} levels")


@pytest.mark.parametrize(("text", "says"), [
    ("methods: &m [pbft, *m]\n", "the alias *m is inside the collection it names"),
    ("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10))
     + "description: *a9\n", "YAML aliases repeat more than 1,000,000 values"),
    ("deep: &d " + "[" * 40 + "]" * 40 + "\nmethods: " + "[" * 20 + "*d" + "]" * 20 + "\n",
     f"the alias *d nests deeper than {MAX_DEPTH} levels"),
])
def test_recursive_and_exploding_aliases_are_refused(cli: Cli, text: str, says: str) -> None:
    write(cli.cwd, "file.yaml", text)
    refused(cli(*EXPERIMENT_RUN, timeout=30), "file.yaml, line", says)


def test_an_alias_that_reuses_a_block_is_still_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "file.yaml", "methods: &m [pbft, raft]\nalso: {methods: *m}\n")
    assert load_yaml(path, "experiment") == {"methods": ["pbft", "raft"], "also": {"methods": ["pbft", "raft"]}}


def test_a_file_over_the_size_limit_is_refused_saying_the_limit(cli: Cli) -> None:
    with (cli.cwd / "file.yaml").open("w", encoding="utf-8") as out:
        out.write(("# " + "x" * 1022 + "\n") * (CONFIG_LIMIT // 1024 + 1))
    refused(cli(*SCENARIO), "file.yaml: the scenario file is larger than the 10 MB limit")


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(cli: Cli) -> None:
    os.mkfifo(cli.cwd / "file.yaml")
    refused(cli(*SCENARIO, timeout=30), "file.yaml: is not a regular file (a device, pipe or socket)")


def test_a_device_as_the_cluster_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    from llm_sched.orchestration.scenarios import load_scenario

    scenarios = scenario_copy(tmp_path)
    healthy = scenarios / "healthy.yaml"
    healthy.write_text(healthy.read_text().replace("cluster: clusters/specialists.yaml", "cluster: /dev/zero"))
    assert error_of(lambda: load_scenario("healthy", scenarios)) == (
        "/dev/zero: is not a regular file (a device, pipe or socket); expected a cluster file")


@pytest.mark.parametrize(("content", "says"), [
    (b"name: a\x00b\n", "not valid YAML: control characters are not allowed (U+0000 near byte 7)"),
    (b"name: x\n\tseed: 1\n", "line 2, column 1: not valid YAML: found a tab character that violates indentation"),
    (b"name: !!python/object:os.system [echo]\n",
     "line 1, column 7: not valid YAML: could not determine a constructor"),
])
def test_yaml_errors_are_one_line_naming_where(cli: Cli, content: bytes, says: str) -> None:
    write(cli.cwd, "file.yaml", content)
    refused(cli(*SCENARIO), "file.yaml", says)


def test_a_byte_order_mark_from_an_editor_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "file.yaml", "\ufeffname: x\n")
    assert load_yaml(path, "scenario") == {"name": "x"}
    assert read_text(path, "scenario") == "name: x\n"


# -- integers beyond 64 bits, wherever they are ---------------------------------------------------

def test_an_integer_beyond_64_bits_in_the_cluster_is_refused_naming_its_field(cli: Cli, tmp_path: Path) -> None:
    # Resources (cores per node) have no upper bound of their own: the loader's range check covers them.
    scenarios = scenario_copy(tmp_path)
    cluster = scenarios / "clusters" / "specialists.yaml"
    cluster.write_text(cluster.read_text().replace("per_node: {cores: 64,", f"per_node: {{cores: {BIG},", 1))
    cli.env.update(LLM_SCHED_SCENARIOS_DIR=str(scenarios))
    refused(cli("--scenario", "healthy", "--provider", "heuristic", "--no-pause"),
            "specialists.yaml: pools.0.nodes.per_node.cores: 123456789012345678901234 does not fit in 64 bits; "
            "integers must be from -9,223,372,036,854,775,808 to 9,223,372,036,854,775,807")


@pytest.mark.parametrize(("field", "says"), [
    ("seed", "seed (--seed): Input should be less than or equal to 9223372036854775807 (got 123456789012345678901234; "
             "allowed: from 0 to 9,223,372,036,854,775,807)"),
    ("jobs", "jobs (--jobs): Input should be less than or equal to 1000 (got 123456789012345678901234; "
             "allowed: from 1 to 1,000)"),
])
def test_an_override_beyond_64_bits_is_refused_naming_the_flag(field: str, says: str) -> None:
    # The command line bounds its flags itself; this is the same check for every other caller
    # (the library API, a stored experiment being resumed).
    message = error_of(lambda: load_experiment(None, {field: int(BIG)}))
    assert message == f"experiment defaults: invalid experiment: {says}"


def test_an_experiment_seed_beyond_64_bits_in_the_file_is_refused(cli: Cli) -> None:
    write(cli.cwd, "file.yaml", EXPERIMENT.replace("seed: 0", f"seed: {BIG}"))
    refused(cli(*EXPERIMENT_RUN), "file.yaml: seed: 123456789012345678901234 does not fit in 64 bits")


def test_a_campaign_seed_beyond_64_bits_is_refused_before_anything_runs(cli: Cli) -> None:
    write(cli.cwd, "file.yaml", CAMPAIGN.replace("seed: 1\n", f"seed: {BIG}\n"))
    refused(cli(*CAMPAIGN_RUN), "file.yaml: seed: 123456789012345678901234 does not fit in 64 bits")
    assert not (cli.cwd / "eval").exists()


def test_a_campaign_seed_whose_last_repetition_overflows_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", CAMPAIGN.replace("seed: 1\n", f"seed: {2**63 - 2}\n"))
    assert "the last repetition's seed) must be at most 9,223,372,036,854,775,807" in error_of(
        lambda: load_campaign(path))


# -- every number of the experiment and the campaign: strict, finite, bounded ---------------------

@pytest.mark.parametrize(("old", "new", "says"), [
    ("jobs: 5", "jobs: true", "jobs (--jobs): Input should be a valid integer (got True; allowed: from 1 to 1,000)"),
    ("agents: 7", "agents: 1000", "agents (--agents): Input should be less than or equal to 100 "
                                  "(got 1000; allowed: from 2 to 100)"),
    ("agents: 7", "agents: 7.0", "agents (--agents): Input should be a valid integer"),
    ("byzantine: 2", "byzantine: 101", "byzantine (--byzantine): Input should be less than or equal to 100"),
    ("crash: 0", "crash: false", "crash (--crash): Input should be a valid integer (got False"),
    ("oversized_every: 5", "oversized_every: true", "oversized_every: Input should be a valid integer (got True"),
    ("repetitions: 3", "repetitions: 1.0e+9", "repetitions (--repetitions): Input should be a valid integer"),
    ("seed: 0", "seed: -1", "seed (--seed): Input should be greater than or equal to 0"),
    ("max_time: 5000", "max_time: .inf", "max_time: Input should be a finite number "
                                         "(got inf; allowed: more than 0 and at most 1,000,000,000)"),
    ("max_time: 5000", "max_time: true", "max_time: Input should be a valid number (got True"),
    ("crash_downtime: 40", "crash_downtime: .nan", "crash_downtime: Input should be a finite number"),
    ("fault_horizon: 100", "fault_horizon: 1.0e+300",
     "fault_horizon: Input should be less than or equal to 1000000000"),
    ("allow_beyond_tolerance: false", "allow_beyond_tolerance: 1", "allow_beyond_tolerance: Input should be a valid "
                                                                   "boolean (got 1)"),
])
def test_experiment_numbers_are_strict_finite_and_bounded(tmp_path: Path, old: str, new: str, says: str) -> None:
    assert old in EXPERIMENT
    path = write(tmp_path, "file.yaml", EXPERIMENT.replace(old, new, 1))
    message = error_of(lambda: load_experiment(str(path)))
    assert message.startswith(f"{path}: invalid experiment: ") and "\n" not in message
    assert says in message


def test_an_experiment_with_true_for_a_number_fails_on_the_command_line(cli: Cli) -> None:
    write(cli.cwd, "file.yaml", EXPERIMENT.replace("jobs: 5", "jobs: true").replace(
        "cluster: ../clusters/specialists.yaml", "cluster: null"))
    refused(cli(*EXPERIMENT_RUN), "file.yaml: invalid experiment: jobs (--jobs): Input should be a valid integer")
    assert not (cli.cwd / "exp").exists()


@pytest.mark.parametrize(("old", "new", "says"), [
    ("jobs: 100", "jobs: true", "base.jobs: Input should be a valid integer (got True; allowed: from 1 to 1,000,000)"),
    ("repetitions: 3", "repetitions: 3.0", "repetitions: Input should be a valid integer"),
    ("load: 0.8", "load: .inf", "base.load: Input should be a finite number"),
    ("load: 0.8", "load: 1.0e+6", "base.load: Input should be less than or equal to 1000"),
    ("hop_delay: 0.01", "hop_delay: .nan", "base.hop_delay: Input should be a finite number"),
    ("repair_mean: 14400", "repair_mean: 1.0e+300", "base.repair_mean: Input should be less than or equal to"),
    ("failure_rate: 0.15", "failure_rate: true", "base.failure_rate: Input should be a valid number"),
    ("deadline_factor: 1.2", "deadline_factor: .inf", "deadline_factor: Input should be a finite number"),
    ("scale: {jobs: [", "scale: {jobs: [10000000, ", "dimensions.scale.jobs.0: Input should be less than or equal "
                                                    "to 1000000 (got 10000000; allowed: from 1 to 1,000,000)"),
    ("high_load: [", "high_load: [true, ", "dimensions.high_load.0: Input should be a valid integer"),
    ("failure_rate: [", "failure_rate: [.nan, ", "dimensions.failure_rate.0: Input should be a finite number"),
])
def test_campaign_numbers_are_strict_finite_and_bounded(tmp_path: Path, old: str, new: str, says: str) -> None:
    assert old in CAMPAIGN
    path = write(tmp_path, "c.yaml", CAMPAIGN.replace(old, new, 1))
    message = error_of(lambda: load_campaign(path))
    assert message.startswith(f"{path}: invalid campaign: ") and says in message, message


# -- validation messages --------------------------------------------------------------------------

def test_several_problems_are_named_on_one_line_after_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "file.yaml", EXPERIMENT.replace("jobs: 5", "jobs: 0").replace("agents: 7", "agents: x"))
    message = error_of(lambda: load_experiment(str(path)))
    assert "\n" not in message
    assert message.startswith(f"{path}: invalid experiment: agents (--agents): Input should be a valid integer (got 'x'")
    assert "; jobs (--jobs): Input should be greater than or equal to 1 (got 0" in message


def test_a_union_names_the_field_not_the_branches_tried(tmp_path: Path) -> None:
    from llm_sched.orchestration.scenarios import ClusterSpec

    data = {"agents": [{"id": f"a{i}", "specialty": "gpu", "pool": "p"} for i in range(4)],
            "pools": [{"id": "p", "specialty": "gpu", "nodes": {"count": 0, "prefix": "g-", "per_node": {"cores": 1}}}]}
    message = error_of(lambda: validated(ClusterSpec, data, "c.yaml", "cluster"))
    assert message.startswith("c.yaml: invalid cluster: pools.0.nodes.count: Input should be greater than or equal")
    assert "[" not in message.split("(got")[0] and "valid list" not in message


def test_a_list_error_that_follows_from_an_item_error_is_not_repeated(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", CAMPAIGN.replace("policies: [agents, fcfs, sjf, easy, conservative]", "policies: [agents, lottery]"))
    assert error_of(lambda: load_campaign(path)) == (
        f"{path}: invalid campaign: policies.1: Input should be 'fcfs', 'sjf', 'easy', 'conservative' or 'agents' (got 'lottery')")


def test_an_unknown_field_lists_the_fields_allowed_there(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", CAMPAIGN.replace("  jobs: 100", "  jobz: 100", 1))
    message = error_of(lambda: load_campaign(path))
    assert "base.jobz: unknown field; allowed fields: jobs, agents, nodes_per_agent, arrival" in message


def test_duplicate_job_ids_are_named(tmp_path: Path) -> None:
    from llm_sched.orchestration.scenarios import load_scenario

    scenarios = scenario_copy(tmp_path)
    healthy = scenarios / "healthy.yaml"
    healthy.write_text(healthy.read_text().replace("id: h-02", "id: h-01", 1))
    assert error_of(lambda: load_scenario("healthy", scenarios)).endswith(
        "phases.0.jobs: job ids must be unique within a phase; repeated: h-01")


# -- the other readers: cassettes and prompt templates --------------------------------------------

@pytest.mark.parametrize(("content", "says"), [
    (b"metadata: caf\xe9\n", "not UTF-8 text (invalid continuation byte at byte 13)"),
    (b"", "the cassette file is empty"),
    (b"- 1\n", "expected a mapping of cassette fields at the top level, found a list"),
    (("a: " + "[" * 20_000).encode(), f"nested deeper than {MAX_DEPTH} levels"),
])
def test_a_broken_cassette_is_named(tmp_path: Path, content: bytes, says: str) -> None:
    from llm_sched.llm.cassettes import read_info

    path = write(tmp_path, "c.yaml", content)
    message = error_of(lambda: read_info(path))
    assert message.startswith(str(path)) and says in message and "\n" not in message


def test_a_prompt_template_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from llm_sched.agents.prompts import render

    write(tmp_path, "gpu.vote.txt", b"system caf\xe9\n---\nuser\n")
    assert error_of(lambda: render("gpu", "vote", {}, folder=tmp_path)) == (
        f"{tmp_path / 'gpu.vote.txt'}: not UTF-8 text (invalid continuation byte at byte 10); save it as UTF-8")
