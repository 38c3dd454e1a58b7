"""Console rendering of an evaluation campaign: the plan, a progress bar, the outcome (a table of
means, the generated findings, the files). It renders; every number comes from the campaign.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from llm_sched.evaluation.analysis import Analysis
from llm_sched.evaluation.campaign import CampaignResult
from llm_sched.evaluation.findings import name

TABLE_METRICS: tuple[tuple[str, str], ...] = (("wait_mean", "s"), ("completion_rate", "%"))
SHORT: dict[str, str] = {"wait_mean": "wait", "completion_rate": "done"}


class CampaignView:
    """Prints to ``console`` (standard output by default)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)

    def header(self, title: str, lines: Sequence[str]) -> None:
        """A rule with the campaign's name, then one line per fact of the plan."""
        self.console.print(Rule(Text(title, style="bold")))
        for line in lines:
            self.console.print(Text(line), soft_wrap=True)

    @contextmanager
    def progress(self) -> Iterator[Callable[[int, int], None]]:
        """A progress bar; the caller reports (done, total) tasks. It appears at the first report.

        The bar is redrawn by the caller's reports (at most ten times a second), not by a thread
        of its own, so worker processes are never forked beside a running rendering thread.
        """
        bar = Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks"),
                       TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, auto_refresh=False)
        task: list[TaskID] = []
        last = [0.0]

        def report(done: int, total: int) -> None:
            if not task:
                bar.start()
                task.append(bar.add_task("campaign", total=total))
            bar.update(task[0], completed=done, total=total)
            now = time.monotonic()
            if done >= total or now - last[0] >= 0.1:
                bar.refresh()
                last[0] = now

        try:
            yield report
        finally:
            if task:
                bar.stop()

    def means_table(self, analysis: Analysis) -> Table:
        """Per configuration, each policy's mean wait and completion rate ("done")."""
        table = Table(title="means over the repetitions (report.md has the CIs and the tests)", title_justify="left",
                      box=box.SIMPLE_HEAD, header_style="bold", padding=(0, 1), show_edge=False, pad_edge=False)
        table.add_column("configuration", no_wrap=True)
        for m, unit in TABLE_METRICS:
            for p in analysis.policies:
                table.add_column(f"{name(p)}\n{SHORT[m]} {unit}", justify="right", no_wrap=True)
        for c in analysis.configs:
            cells = [c.label]
            for m, unit in TABLE_METRICS:
                scale = 100.0 if unit == "%" else 1.0
                for p in analysis.policies:
                    mean = analysis.summaries[c.key][p][m].mean
                    cells.append("-" if mean is None else f"{scale * mean:,.{1 if unit == '%' else 0}f}")
            table.add_row(*cells)
        return table

    def outcome(self, result: CampaignResult) -> None:
        """The table of means, the findings, the files and the times."""
        console = self.console
        console.print()
        console.print(self.means_table(result.analysis))
        console.print(Rule(Text("findings", style="bold")))
        console.print(Markdown("\n".join(f"- {f}" for f in result.findings)))
        console.print()
        reused = f", {result.reused} reused from an earlier invocation" if result.reused else ""
        if result.run_id:
            reused += f" (ledger run {result.run_id})"
        console.print(Text(f"{result.tasks} tasks{reused}; simulations {result.simulation_s:.1f} s, "
                           f"total {result.wall_s:.1f} s", style="bold"))
        console.print(Text(f"report: {result.report}", style="bold"), soft_wrap=True)  # paths stay whole
        for path in result.files[1:]:
            console.print(Text(f"  {_relative(path, result.folder)}"), soft_wrap=True)


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)
