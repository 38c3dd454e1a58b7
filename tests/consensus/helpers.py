"""Shared test helpers: run a schedule on a network to its natural end, with every message counted."""

from __future__ import annotations

from llm_sched.consensus.harness import Schedule, make_factory
from llm_sched.consensus.messages import KeyRing, Message
from llm_sched.consensus.network import Network


def run_to_end(schedule: Schedule, until: float = 2_000.0) -> tuple[Network, list[Message]]:
    """Run without stopping early, so messages still in flight after the last decision count too."""
    keyring = KeyRing(schedule.seed, range(schedule.n))
    sent: list[Message] = []
    net = Network(range(schedule.n), make_factory(schedule, keyring), keyring, schedule.seed,
                  schedule.faults, sent.append)
    net.run(until)
    return net, sent
