"""A federation: the agents, their cluster and the names everything on the bus is filed under.

A federation is read from a scenario file (``scenarios/federation.yaml``, ``scenarios/supercomputers.yaml``):
its cluster's agents are the members, in the file's order (member index = position), its cluster the
pools they place jobs on, its seed the background loads. The jobs of its phases are what
``llm-sched submit`` sends.

Names on the bus: subjects use the federation's name with dots made underscores (a dot separates
subject tokens) and each member's index, never its name; JetStream stream and bucket names are
upper-case with only letters, digits and ``_``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from llm_sched.core.state import ClusterState
from llm_sched.orchestration.scenarios import JobSpec, Scenario, load_scenario
from llm_sched.protocols.quorum import byzantine_quorum


@dataclass(frozen=True, slots=True)
class Member:
    """One agent of the federation."""

    index: int
    name: str
    specialty: str


@dataclass(frozen=True, slots=True)
class Subjects:
    """Every subject, stream and bucket name of one federation."""

    token: str  # the federation's name as one subject token

    @property
    def jobs(self) -> str:
        return f"fed.{self.token}.jobs"

    def decided(self, instance: int) -> str:
        return f"fed.{self.token}.decided.{instance}"

    @property
    def decided_all(self) -> str:
        return f"fed.{self.token}.decided.*"

    def to(self, index: int) -> str:
        """Protocol messages for one member."""
        return f"fed.{self.token}.to.{index}"

    @property
    def broadcast(self) -> str:
        """Protocol messages for every member (published once, signed once)."""
        return f"fed.{self.token}.all"

    def heartbeat(self, index: int) -> str:
        return f"fed.{self.token}.hb.{index}"

    @property
    def heartbeats(self) -> str:
        return f"fed.{self.token}.hb.*"

    @property
    def _stream_stem(self) -> str:
        return "FED_" + re.sub(r"[^A-Z0-9]", "_", self.token.upper())

    @property
    def jobs_stream(self) -> str:
        return f"{self._stream_stem}_JOBS"

    @property
    def decisions_stream(self) -> str:
        return f"{self._stream_stem}_DECISIONS"

    @property
    def registry_bucket(self) -> str:
        """Live members: one TTL entry each, refreshed while the agent runs."""
        return f"{self._stream_stem}_REGISTRY"

    @property
    def status_bucket(self) -> str:
        """The formation record and each member's final status: kept, no TTL."""
        return f"{self._stream_stem}_STATUS"


@dataclass(frozen=True)
class Federation:
    """A loaded federation."""

    name: str
    path: Path
    seed: int
    members: tuple[Member, ...]
    scenario: Scenario

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def quorum(self) -> int:
        return byzantine_quorum(self.n)

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.name.replace(".", "_"))

    def member(self, name: str) -> Member:
        """The member called ``name``; KeyError naming the members when there is none."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"no agent {name!r} in federation {self.name}; its agents are: "
                       f"{', '.join(m.name for m in self.members)}")

    def initial_state(self) -> ClusterState:
        """The cluster before any job: the same at every member (loads drawn from the seed)."""
        return self.scenario.cluster.build_state(self.seed)

    def job_specs(self) -> list[tuple[JobSpec, float]]:
        """The file's jobs with their arrival offsets (each phase's interval between submissions)."""
        out, t = [], 0.0
        for phase in self.scenario.phases:
            for spec in phase.jobs:
                out.append((spec, t))
                t += phase.job_interval_s
        return out


def load_federation(name_or_path: str, scenarios_dir: Path) -> Federation:
    """The federation of a scenario file (a name in ``scenarios_dir`` or a path); UserError when invalid."""
    scenario = load_scenario(name_or_path, scenarios_dir)
    members = tuple(Member(i, a.id, a.specialty) for i, a in enumerate(scenario.cluster.agents))
    return Federation(scenario.name, scenario.path, scenario.seed, members, scenario)

