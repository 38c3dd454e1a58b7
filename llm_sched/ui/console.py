"""The console view of a run: one subscriber on the event stream.

The first decision of a run is shown whole: with ``transparent`` (``--interactive``) every prompt
and raw model answer in a panel, JSON highlighted, then the proposals, the votes and the tally. The
first decision of each later phase shows its proposals, votes and tally. Every other decision is one line: job, winner, votes against and the quorum, outcome,
fallbacks. ``verbose`` shows every decision whole. Between phases it pauses for Enter when asked to
and when standard input is a terminal; it never waits without one, and Ctrl-C there stops at once.

Text that comes from outside (job names, model answers) is shown with its control characters made
visible, so it cannot move the cursor or change the terminal.
"""

from __future__ import annotations

import json
import select
import signal
import sys
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from llm_sched.core.events import RunEvent
from llm_sched.safe_text import printable as safe

_VIA_STYLE = {"llm": "green", "fallback": "yellow", "heuristic": "cyan", "check": "magenta", "byzantine": "bold red"}
def _via(message: Any) -> str:
    """How an answer came about; a Byzantine rewrite is never shown as the model's own words."""
    return "byzantine" if getattr(message, "byzantine", False) else message.via
_HEALTH_STYLE = {"healthy": "green", "suspect": "yellow", "excluded": "bold red"}


def _nodes(nodes: list[str] | tuple[str, ...], limit: int = 8) -> str:
    """A node list for the screen: short lists whole, long ones by their ends and their length."""
    if len(nodes) <= limit:
        return ", ".join(nodes)
    return f"{', '.join(nodes[:min(3, limit)])}, ... {nodes[-1]} ({len(nodes)} nodes)"


def _ranked_by(e: Any) -> str:
    """What ranked a candidate: the voters' recomputed score beside its author's claim, or a bid."""
    if e.score is None:
        return "fails the check"
    if e.claimed is None:
        return f"score {e.score:.2f}"
    return f"voters' median score {e.score:.2f}, claimed {e.claimed:.2f}"


def _read_line(stream: Any, wake_every_s: float = 0.25) -> str:
    """A line from ``stream``, waiting in short slices so that Ctrl-C always stops the wait.

    The kernel may deliver SIGINT to any thread (aiosqlite keeps one); Python then only sets a flag,
    which a main thread blocked in ``read`` never looks at (1 Ctrl-C in 15 was lost that way). A
    ``select`` that times out returns to the interpreter, which raises the pending KeyboardInterrupt."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream.readline()  # no descriptor to wait on (a test's StringIO): nothing blocks
    try:
        while not select.select([fd], [], [], wake_every_s)[0]:
            pass
    except OSError:  # a descriptor select cannot wait on (Windows consoles): read as before
        pass
    return stream.readline()


class ConsoleView:
    """Prints events as they happen; ``console`` may be redirected for tests."""

    def __init__(self, console: Console | None = None, *, transparent: bool = False, pause: bool = False,
                 verbose: bool = False) -> None:
        self.console = console or Console(highlight=False)
        self.transparent = transparent
        self.verbose = verbose
        self.pause = pause and sys.stdin.isatty()
        self._phases = 0
        self._votes: list[Any] = []
        self._detailed = True  # the current job is shown whole (the first of its phase, or --verbose)
        self._panels = True  # the current job's prompts and answers are shown (the run's first, or --verbose)
        self._fallbacks = 0  # answers of the current job that fell back to the heuristic
        self._quorum = 0
        self._last_prompt: dict[str, list[str]] = {}  # role -> lines of the last prompt shown in a panel

    def __call__(self, event: RunEvent) -> None:
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    # -- structure -----------------------------------------------------------------------------
    def _on_scenario_started(self, e: Any) -> None:
        agents = ", ".join(f"{a} ({s})" for a, s in e.agents.items())
        self._quorum = e.quorum
        self.console.print(Rule(Text(f"scenario {e.scenario}", style="bold")))
        self.console.print(Text(f"provider: {e.provider}   seed: {e.seed}"))
        if e.source.get("detail"):
            style = {"replay": "bold yellow", "live": "bold green"}.get(e.source.get("kind", ""), "bold cyan")
            self.console.print(Text(f"answers: {safe(e.source['detail'])}", style=style))
        self.console.print(Text(f"agents (n={e.n}, tolerates f={e.f} Byzantine): {agents}"))
        if e.method == "bidding":
            self.console.print(Text("each agent bids for every job on the machine it runs; bids are verified "
                                    "against the shared state"))
        if e.weighted:
            self.console.print(Text(f"commit needs a reputation-weighted Byzantine quorum: {e.quorum}/{e.n} of the "
                                    "agents' total reputation (a detected liar's vote weighs little)"))
        else:
            self.console.print(Text(f"commit needs a Byzantine quorum of q = {e.quorum} of {e.n} votes"))
        if e.executor != "sim":
            self.console.print(Text(f"committed jobs run on the {e.executor} executor (times: wall clock, scaled)",
                                    style="bold"))

    def _on_phase_started(self, e: Any) -> None:
        if self._phases and self.pause:
            self._wait_for_enter()
        self._phases += 1
        self._detailed = True
        self.console.print()
        self.console.print(Rule(Text(f"phase: {e.phase}", style="bold cyan")))
        if e.description:
            self.console.print(Text(e.description, style="italic"))

    def _on_fault_changed(self, e: Any) -> None:
        state = Text("turns Byzantine", style="bold red") if e.active else Text("is honest again", style="green")
        self.console.print(Text(f"fault schedule: {e.agent} ") + state + Text(f" ({e.behaviour})"))

    def _wait_for_enter(self) -> None:
        # asyncio.run's own SIGINT handler only cancels the running task, which a blocking read does
        # not notice: while waiting here, Ctrl-C raises at once.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.console.print("\n[dim]Press Enter for the next phase (Ctrl-C stops; the run can be resumed)...[/]",
                               end="")
            if not _read_line(sys.stdin):
                self.pause = False  # standard input ended: nobody is left to press Enter
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_job_submitted(self, e: Any) -> None:
        job = e.job
        self._fallbacks = 0
        if e.retry_of and not self._detailed:
            self.console.print(Text(f"job {safe(job.id)}: {safe(e.retry_of)} again, for the agents to place anew",
                                    style="bold"))
        if not self._detailed:
            return
        title = f"{job.id} {job.kind}{': ' + safe(job.name) if job.name else ''}"
        self.console.print()
        self.console.print(Text(f"job {title} - {job.describe()}, t={e.sim_time:g} s", style="bold"))

    def _on_job_started(self, e: Any) -> None:
        if e.executor != "sim":  # the simulated clock starts every commit at once: the decision says it
            where = f" as {e.executor} job {safe(e.external_id)}" if e.executor == "slurm" and e.external_id else ""
            self.console.print(Text(f"  {safe(e.job_id)} started on {', '.join(e.nodes)}{where}, t={e.sim_time:.0f} s",
                                    style="dim"))

    def _on_job_finished(self, e: Any) -> None:
        if e.state != "completed":
            self.console.print(Text(f"  {safe(e.job_id)} {e.state} at t={e.sim_time:.0f} s ({safe(e.reason)}): its "
                                    "nodes released, the job goes back to the agents", style="bold red"))
        elif self.verbose:
            ran = f" (ran on {', '.join(e.ran_on)})" if e.ran_on else ""
            self.console.print(Text(f"  {safe(e.job_id)} finished at t={e.sim_time:g} s{ran}, its nodes released",
                                    style="dim"))

    def _on_node_state(self, e: Any) -> None:
        change = "down: it takes no job" if e.state == "down" else "back up"
        self.console.print(Text(f"node {safe(e.node)} {change} ({safe(e.reason)}), t={e.sim_time:.0f} s",
                                style="bold red" if e.state == "down" else "green"))

    # -- the LLM -------------------------------------------------------------------------------
    def _on_llm_call(self, e: Any) -> None:
        if not (self.transparent and self._panels):
            return
        r = e.record
        lines = []
        for m in r.messages:
            lines.append(self._shown(m.role, safe(m.content)))
        prompt = "\n".join(line for line in lines if line)
        parts: list[Any] = [Text(prompt, style="dim")]
        for i, raw in enumerate(r.raw):
            label = "answer" if i == 0 else "answer after repair request"
            parts.append(Text(f"{label}: ", style="bold") + _highlight(raw))
        meta = f"{r.provider}: {r.outcome}, {r.attempts} attempt{'s' if r.attempts != 1 else ''}"
        if r.tokens_in is not None:
            meta += f", {r.tokens_in}+{r.tokens_out} tokens"
        if r.error:
            parts.append(Text(f"\n{safe(r.error)}", style="yellow"))
        style = {"ok": "green", "repaired": "yellow"}.get(r.outcome, "red")
        self.console.print(Panel(Group(*parts), title=f"{r.agent} {r.step} prompt and answer", subtitle=meta,
                                 border_style=style))

    def _shown(self, role: str, content: str) -> str:
        """A prompt part for a panel: whole the first time; after that only what differs from the
        panel above (agents asked about the same job share most of their prompt)."""
        lines, before = content.splitlines(), self._last_prompt.get(role, [])
        self._last_prompt[role] = lines
        if not before:
            return f"[{role}] {content}"
        new = [line for line in lines if line not in before]
        if not new:
            return f"[{role}] (as above)" if role != "system" else ""
        if len(new) * 2 > len(lines):
            return f"[{role}] {content}"
        return f"[{role}] as above, but:\n" + "\n".join(new)

    # -- proposals, votes, outcome -------------------------------------------------------------
    def _on_proposal(self, e: Any) -> None:
        p = e.proposal
        self._fallbacks += p is not None and p.via == "fallback"
        if not self._detailed:
            return
        if p is None:
            self.console.print(Text(f"  {e.agent}: no proposal (silent)", style="red"))
            return
        if p.placement is None and p.reasoning.startswith("no bid"):
            self.console.print(Text(f"  {e.agent}: {p.reasoning}", style="dim"))
            return
        where = f"{p.placement.pool} ({_count(p.placement.nodes)})" if p.placement else "nothing feasible"
        verb = "bids" if p.claims is not None else "proposes"
        line = Text(f"  {e.agent} {verb} {where} score {p.score:.2f} ")
        line.append(f"[{_via(p)}]", style=_VIA_STYLE[_via(p)])
        self.console.print(line)
        if self.transparent and (not self._panels or p.byzantine):  # the panels show the model's own words
            self.console.print(Text(f"    {safe(p.reasoning)}", style="dim"))

    def _on_candidate(self, e: Any) -> None:
        self._votes = []
        if not self._detailed:
            return
        self.console.print(Text(f"  round {e.round}: vote on {e.proposer}'s {e.placement.pool} "
                                f"[{_nodes(e.placement.nodes)}] ({_ranked_by(e)})"))

    def _on_score_overclaimed(self, e: Any) -> None:
        if not self._detailed:
            return
        self.console.print(Text(f"  {e.agent} claimed score {e.claimed:.2f}; its own specialty computes "
                                f"{e.recomputed:.2f} from the shared state (tolerance {e.tolerance:.2f})", style="red"))

    def _on_vote(self, e: Any) -> None:
        self._votes.append(e)
        self._fallbacks += e.vote is not None and e.vote.via == "fallback"

    def _on_tally(self, e: Any) -> None:
        if not self._detailed:
            return
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
        for column in ("agent", "vote", "confidence", "via"):
            table.add_column(column, no_wrap=True)
        # One line a vote; --verbose shows the whole reasoning.
        table.add_column("reasoning", overflow="fold" if self.verbose else "ellipsis", no_wrap=not self.verbose)
        for v in self._votes:
            if v.vote is None:
                table.add_row(v.agent, Text("silent", style="red"), "-", "-", "no answer in time")
                continue
            vote = Text("accept", style="green") if v.vote.accept else Text("reject", style="red")
            if not v.counted:  # its signature failed or it equivocated: see the refusal below the table
                vote = Text(f"{vote.plain} (refused)", style="bold red")
            reasoning = safe(v.vote.reasoning)
            table.add_row(v.agent, vote, f"{v.vote.confidence:.2f}", Text(_via(v.vote), style=_VIA_STYLE[_via(v.vote)]),
                          Text(reasoning))
        self.console.print(table)
        verdict = Text("passes", style="green") if e.passed else Text("fails", style="red")
        if e.accept_weight is not None:
            tally = Text(f"  tally: {e.accepts} accept, {e.rejects} reject, {e.silent} silent; accepting weight "
                         f"{e.accept_weight:.2f} of {e.total_weight:.2f}, needs {e.needed_weight:.2f} -> ")
        else:
            tally = Text(f"  tally: {e.accepts} accept, {e.rejects} reject, {e.silent} silent; needs {e.quorum} -> ")
        if e.refused:
            tally = Text(tally.plain.replace(" silent;", f" silent, {e.refused} refused;"))
        if e.protocol is not None:
            tally = Text(tally.plain.replace(" -> ", f"; {e.protocol.upper()}: {e.messages} messages -> "))
        self.console.print(tally + verdict)

    def _on_vote_refused(self, e: Any) -> None:
        if not self._detailed:
            return
        self.console.print(Text(f"  refused: a vote from {e.sender}: {safe(e.reason)}", style="bold red"))

    def _on_proposal_blocked(self, e: Any) -> None:
        self.console.print(Text(f"  blocked: {e.proposer}'s proposal is infeasible ({'; '.join(e.reasons[:2])})",
                                style="bold red"))

    def _on_reputation(self, e: Any) -> None:
        if not self._detailed:
            return
        style = "green" if e.new > e.old else "red"
        self.console.print(Text(f"  reputation {e.agent}: {e.old:.2f} -> {e.new:.2f} ({e.reason})", style=style))

    def _on_agent_excluded(self, e: Any) -> None:
        self.console.print(Text(f"  DETECTED: {e.agent} (reputation {e.reputation:.2f}) may no longer propose",
                                style="bold red"))

    def _on_agent_readmitted(self, e: Any) -> None:
        self.console.print(Text(f"  {e.agent} readmitted (reputation {e.reputation:.2f})", style="bold green"))

    def _on_decision(self, e: Any) -> None:
        d = e.decision
        if not self._detailed:
            self._decision_line(d)
            return
        self._detailed = self._panels = self.verbose
        if d.outcome == "commit":
            how = "unanimous" if e.unanimous else f"{d.accepts} of {d.voters}"
            if d.certificate is not None:
                how += f", certificate of {len(d.certificate.signatures)} signatures"
            text = f"  COMMIT {d.job_id} -> {d.placement.pool} [{_nodes(d.placement.nodes)}] ({how}, round {d.rounds})"
            self.console.print(Text(text, style="bold green"))
        else:
            self.console.print(Text(f"  REJECT {d.job_id}: {safe(d.reason)}", style="bold yellow"))

    def _decision_line(self, d: Any) -> None:
        """One line: job, winner, votes against and the quorum, outcome, fallbacks."""
        against = sum(1 for v in self._votes if v.vote is None or not v.vote.accept)
        fallbacks = f"; {self._fallbacks} fallback{'s' if self._fallbacks != 1 else ''}"
        if d.outcome == "commit":
            rounds = f", round {d.rounds}" if d.rounds > 1 else ""
            text = (f"  {d.job_id} COMMIT {d.placement.pool} ({_count(d.placement.nodes)}) by {d.proposer}; "
                    f"{against} against, q={self._quorum}/{d.voters}{rounds}{fallbacks}")
            self.console.print(Text(text, style="green"))
        else:
            self.console.print(Text(f"  {d.job_id} REJECT {safe(d.reason)}{fallbacks}", style="yellow"))


    def _on_occupancy(self, e: Any) -> None:
        table = Table(title=f"occupancy after {e.job_id} (t={e.sim_time:g} s)", show_header=True, header_style="bold",
                      box=None, padding=(0, 1), title_justify="left")
        table.add_column("pool", no_wrap=True)
        for column in ("type", "job nodes", "jobs", "backgr.", "total"):
            table.add_column(column, no_wrap=True)
        table.add_column("running", overflow="fold")
        for p in e.pools:
            table.add_row(p.pool, p.label or "-", f"{p.job_nodes} / {p.nodes}", f"{p.jobs:.0%}", f"{p.background:.0%}",
                          _bar(p.total), ", ".join(p.running) or "-")
        self.console.print(table)

    def _on_network_status(self, e: Any) -> None:
        table = Table(title="network status", show_header=True, header_style="bold")
        for column in ("agent", "runs", "health", "reputation"):
            table.add_column(column)
        for a in e.agents:
            table.add_row(a.agent, a.pool or "-", Text(a.health, style=_HEALTH_STYLE[a.health]), f"{a.reputation:.2f}")
        self.console.print()
        self.console.print(table)


def _count(nodes: tuple[str, ...] | list[str]) -> str:
    return f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}"


def _bar(share: float, width: int = 8) -> Text:
    filled = round(share * width)
    style = "red" if share >= 0.9 else "yellow" if share >= 0.7 else "green"
    return Text("█" * filled, style=style) + Text("░" * (width - filled), style="dim") + Text(f" {share:.0%}")


def _highlight(raw: str) -> Text:
    """The model's answer as it gave it: valid JSON highlighted on one line, anything else made safe."""
    try:
        json.loads(raw)
    except ValueError:
        return Text(safe(raw))
    shown = safe(raw.strip())
    text = Syntax(shown, "json", theme="ansi_dark").highlight(shown)
    text.rstrip()
    return text


def _seconds(summary: dict[str, Any]) -> str:
    if summary["consensus_s_mean"] is None:
        return "-"
    return f"mean {summary['consensus_s_mean']:.3f} s, max {summary['consensus_s_max']:.3f} s"


def _llm_rows(llm: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The model-quality figures of ``summary["llm"]``, when a model was asked at all."""
    if not llm or not llm["calls"]:
        return []
    calls = llm["calls"]
    tokens = "-" if llm["prompt_tokens"] is None else \
        f"{llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion"
    agreement = "-" if llm["agreement_with_heuristic"] is None else f"{llm['agreement_with_heuristic']:.0%}"
    latency = llm["decision_latency_s"]
    return [
        ("valid first try", f"{llm['valid_first_try']} of {calls} ({llm['valid_first_try'] / calls:.0%}); "
                            f"repaired {llm['repaired']}"),
        ("tokens", tokens),
        ("agreement with the heuristic", agreement),
        ("decision latency", f"median {latency['median']:.3f} s, p95 {latency['p95']:.3f} s"),
    ]


def _source(summary: dict[str, Any]) -> str:
    """Where the run's answers came from, in short (the banner and summary.json have it all)."""
    source = summary.get("source") or {}
    if source.get("kind") == "replay":
        cassette = source.get("cassette") or {}
        return f"cassette recorded from {cassette.get('provider')} {source.get('model')} (replayed)"
    if source.get("kind") == "live":
        return f"live {source.get('provider')} model {source.get('model')}"
    return str(summary["provider"])


def _protocol(summary: dict[str, Any]) -> str:
    if not summary.get("protocol"):
        return "-"  # a run from before protocol rounds
    return f"{summary['protocol_messages']} ({summary['protocol']}, simulated network)"


def _certified(summary: dict[str, Any]) -> str:
    if "certified_commits" not in summary:
        return "-"  # a run from before signed votes
    return f"{summary['certified_commits']} of {summary['committed']} (signed votes; check with --verify)"


def _executor_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """What a real executor saw (none for the simulated clock, where every job simply completes)."""
    executor = summary.get("executor", "sim")
    if executor == "sim":
        return []
    ends = ", ".join(f"{n} {state}" for state, n in summary["job_ends"].items()) or "none yet"
    return [(f"jobs run on {executor}", f"{ends}; {summary['jobs_placed_again']} placed again, "
                                        f"{summary['nodes_down']} nodes went down")]


def summary_table(summary: dict[str, Any]) -> Table:
    """The end-of-run table; every figure comes from :func:`llm_sched.orchestration.summary.summarize`."""
    table = Table(title=f"summary: {summary['scenario']}", show_header=True, header_style="bold")
    table.add_column("figure", no_wrap=True)
    table.add_column("value", overflow="fold")
    detected = ", ".join(f"{d['agent']} at {d['job_id']}" for d in summary["faulty_agents_detected"]) or "none"
    readmitted = ", ".join(f"{d['agent']} at {d['job_id']}" for d in summary["agents_readmitted"]) or "none"
    outcomes = ", ".join(f"{k} {v}" for k, v in summary["llm_outcomes"].items()) or "-"
    rows = [
        ("jobs", summary["jobs"]),
        ("decisions committed", summary["committed"]),
        ("decisions rejected (agreed, with reason)", summary["rejected"]),
        ("unanimous decisions", summary["unanimous"]),
        ("voting rounds", summary["rounds"]),
        ("commits with a quorum certificate", _certified(summary)),
        ("protocol messages (counted)", _protocol(summary)),
        ("votes refused (signature, equivocation)", summary.get("votes_refused", "-")),
        ("invalid proposals blocked", summary["invalid_proposals_blocked"]),
        # "-": a run from before the check, whose summary has no such figure.
        ("self-reported scores over-claimed", summary.get("scores_overclaimed", "-")),
        ("faulty agents detected", detected),
        ("agents readmitted", readmitted),
        ("silent answers", summary["silent_answers"]),
        ("answers from", _source(summary)),
        ("LLM calls", f"{summary['llm_calls']} ({outcomes})"),
        ("fallbacks to heuristics", summary["fallbacks"]),
        *_llm_rows(summary.get("llm")),
        ("nodes allocated", summary["nodes_allocated"]),
        ("awards by agent", ", ".join(f"{a} {n}" for a, n in summary["awards"].items()) or "none"),
        ("decisions under attack", summary["decisions_under_attack"]),
        ("consensus time per job", _seconds(summary)),
        *_executor_rows(summary),
        ("wall time", f"{summary['wall_s']:.2f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table
