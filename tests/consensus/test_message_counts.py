"""Exact normal-case message counts, measured by the simulated network's accounting.

Expected figures are the ones printed in docs/REFERENCE.md ("Message complexity, one decision");
n = 4 is not in that table, so its row follows the same formulas.
"""

from __future__ import annotations

import pytest

from llm_sched.protocols.messages import Kind
from llm_sched.transport.harness import Schedule
from llm_sched.transport.network import Network

from .helpers import run_to_end

# n: (PBFT 2n(n-1), Tendermint (n-1)(2n+1), PBFT view change n(n-1))
REFERENCE = {4: (24, 27, 12), 5: (40, 44, 20), 7: (84, 90, 42), 10: (180, 189, 90)}
SIZES = sorted(REFERENCE)


def assert_all_decided(net: Network, honest: tuple[int, ...], slots: int) -> None:
    for a in honest:
        assert sorted(net.decisions[a]) == list(range(slots)), f"agent {a} did not decide every slot"


@pytest.mark.parametrize("n", SIZES)
def test_pbft_normal_case(n: int) -> None:
    s = Schedule("pbft", n, slots=1, seed=n)
    net, _ = run_to_end(s)
    assert_all_decided(net, s.honest, 1)
    sent = net.stats.sent
    assert net.stats.total_sent == REFERENCE[n][0]
    assert (sent[Kind.PRE_PREPARE], sent[Kind.PREPARE], sent[Kind.COMMIT]) == (n - 1, (n - 1) ** 2, n * (n - 1))
    assert net.stats.delivered == net.stats.sent  # nothing lost on a clean network


@pytest.mark.parametrize("n", SIZES)
def test_tendermint_normal_case(n: int) -> None:
    s = Schedule("tendermint", n, slots=1, seed=n)
    net, _ = run_to_end(s)
    assert_all_decided(net, s.honest, 1)
    sent = net.stats.sent
    assert net.stats.total_sent == REFERENCE[n][1]
    assert (sent[Kind.PROPOSAL], sent[Kind.PREVOTE], sent[Kind.PRECOMMIT]) == (n - 1, n * (n - 1), n * (n - 1))


@pytest.mark.parametrize("protocol", ["pbft", "tendermint"])
@pytest.mark.parametrize("slots", [3, 8])
def test_counts_are_per_decision(protocol: str, slots: int) -> None:
    n = 7
    net, _ = run_to_end(Schedule(protocol, n, slots=slots, seed=1))
    per_decision = REFERENCE[n][0 if protocol == "pbft" else 1]
    assert net.stats.total_sent == slots * per_decision


@pytest.mark.parametrize("n", SIZES)
def test_pbft_view_change(n: int) -> None:
    """A silent primary: the n-1 others time out together, then one new view."""
    s = Schedule("pbft", n, slots=1, seed=n, byzantine=((0, "silent"),))
    net, _ = run_to_end(s)
    assert_all_decided(net, s.honest, 1)
    sent = net.stats.sent
    assert sent[Kind.VIEW_CHANGE] + sent[Kind.NEW_VIEW] == REFERENCE[n][2]
    assert (sent[Kind.VIEW_CHANGE], sent[Kind.NEW_VIEW]) == ((n - 1) ** 2, n - 1)


def test_fast_path_keeps_counts_and_saves_a_delay() -> None:
    slow_net, _ = run_to_end(Schedule("pbft", 7, slots=1, seed=3))
    fast_net, _ = run_to_end(Schedule("pbft", 7, slots=1, seed=3, fast_path=True))
    assert fast_net.stats.total_sent == slow_net.stats.total_sent == REFERENCE[7][0]
    assert max(fast_net.decided_at[a][0] for a in range(7)) == 2.0  # pre-prepare, prepare
    assert max(slow_net.decided_at[a][0] for a in range(7)) == 3.0  # ... and commit


@pytest.mark.parametrize("protocol", ["pbft", "tendermint"])
def test_bytes_are_accounted_per_kind(protocol: str) -> None:
    net, sent = run_to_end(Schedule(protocol, 5, slots=2, seed=2))
    assert net.stats.total_bytes == sum(m.size() for m in sent)
    for kind, count in net.stats.sent.items():
        assert net.stats.sent_bytes[kind] > 0 and count > 0
