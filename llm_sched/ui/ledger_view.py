"""Tables of what the ledger holds: ``--runs`` (every stored run) and ``--show RUN_ID`` (one run's
decisions with the votes and reputation changes behind each).

Both show whether each scenario run's event log is whole, as :mod:`llm_sched.store.run_health` found it;
a damaged log is reported under the table with the file and line."""

from __future__ import annotations

from rich.table import Table

from llm_sched.store.ledger import DecisionRecord, RunInfo
from llm_sched.store.run_health import LogState


def _report(table: Table, problems: list[tuple[str, str]]) -> None:
    if problems:
        table.caption = "\n".join(f"run {run_id}: {problem}" for run_id, problem in problems)
        table.caption_style = "bold red"
        table.caption_justify = "left"


def runs_table(runs: list[RunInfo], ledger: str, states: dict[str, LogState]) -> Table:
    table = Table(title=f"stored runs ({ledger})", header_style="bold")
    table.add_column("run id", no_wrap=True)
    table.add_column("scenario / kind")
    table.add_column("provider")
    table.add_column("seed", justify="right")
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("decisions", justify="right")
    table.add_column("status")
    table.add_column("event log")
    problems = []
    for r in runs:
        name = r.name if r.kind == "scenario" else f"{r.kind} {r.name}"
        done = str(r.decisions) if r.kind == "scenario" else f"{r.units} units"
        state = states[r.run_id]
        if state.problem:
            problems.append((r.run_id, state.problem))
        table.add_row(r.run_id, name, r.provider, str(r.seed), r.started[:16].replace("T", " "), done, r.status,
                      state.cell)
    _report(table, problems)
    return table


def _votes(d: DecisionRecord) -> str:
    """``4 accept, 1 reject (byz-agent)``: counts, and who voted with the minority or not at all."""
    counts: dict[str, list[str]] = {}
    for v in d.votes:
        counts.setdefault(v.vote, []).append(v.agent)
    if not counts:
        return "-"
    majority = max(counts, key=lambda k: len(counts[k]))
    return ", ".join(f"{len(agents)} {vote}" + ("" if vote == majority else f" ({', '.join(agents)})")
                     for vote, agents in sorted(counts.items()))


def decisions_table(run: RunInfo, decisions: list[DecisionRecord], state: LogState) -> Table:
    log = "" if state.cell == "-" else f", event log {state.cell}"
    table = Table(title=f"run {run.run_id}: {run.name}, seed {run.seed}, {run.provider}, {run.status}{log}",
                  header_style="bold")
    _report(table, [(run.run_id, state.problem)] if state.problem else [])
    table.add_column("#", justify="right")
    table.add_column("job", no_wrap=True)
    table.add_column("decision")
    table.add_column("proposer")
    table.add_column("votes")
    table.add_column("reputation changes")
    for d in decisions:
        what = f"{d.pool}: {len(d.nodes)} node{'s' if len(d.nodes) != 1 else ''}" if d.pool else f"reject: {d.reason}"
        changes = "; ".join(f"{c.agent} {c.old:.2f}->{c.new:.2f}" for c in d.reputation_changes) or "-"
        table.add_row(str(d.seq), d.job_id, what, d.proposer or "-", _votes(d), changes)
    return table
