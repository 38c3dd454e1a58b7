"""Console rendering of a protocol experiment: the set-up, a progress bar, the summary table.

It only renders: every figure comes from :mod:`llm_sched.experiments.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table
from rich.text import Text


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


class ExperimentView:
    """Prints to ``console`` (a plain one by default)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)

    def header(self, lines: list[str], title: str) -> None:
        self.console.print(Rule(Text(title, style="bold")))
        for line in lines:
            self.console.print(Text(line))

    @contextmanager
    def progress(self, total: int) -> Iterator[Callable[[str], None]]:
        """A progress bar over ``total`` runs; the caller advances it with a description."""
        bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=self.console, transient=False)
        with bar:
            task = bar.add_task("starting", total=total)

            def advance(description: str) -> None:
                bar.update(task, advance=1, description=description)

            yield advance

    def summary(self, summaries: dict[str, dict[str, Any]], notes: list[str], folder: Path,
                files: list[Path], wall_s: float, *, reused: int = 0, run_id: str | None = None) -> None:
        self.console.print()
        self.console.print(self._outcomes(summaries))
        self.console.print()
        self.console.print(self._costs(summaries))
        self.console.print(Text("latency: mean/p50/p99 simulated seconds from the batch's submission to the first "
                                "honest decision. msgs/dec: every message until all honest agents decided; normal: "
                                "only the kinds the literature counts per decision (ref). faults: active per job.", style="dim"))
        for line in notes:
            self.console.print(Text(f"- {line}"))
        if reused:
            self.console.print(Text(f"resumed: {reused} run(s) taken from the ledger (run {run_id}), the others "
                                    "run now"))
        self.console.print(Text(f"wall time {wall_s:.2f} s; results in {folder}:", style="bold"))
        for path in files:
            self.console.print(Text(f"  {path.name}"))

    @staticmethod
    def _table(title: str, columns: tuple[str, ...]) -> Table:
        table = Table(title=title, header_style="bold", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                      show_edge=False, pad_edge=False)
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i < 2 else "right", no_wrap=True)
        return table

    def _outcomes(self, summaries: dict[str, dict[str, Any]]) -> Table:
        table = self._table("decisions per method, all repetitions",
                            ("method", "model", "decided", "violations", "latency (s)", "views/rounds"))
        for name, s in summaries.items():
            lat, prog = s["latency"], s["progress"]
            unit = prog["counts"].split()[-1]
            table.add_row(
                name,
                "Byzantine" if s["fault_model"] == "byzantine" else Text("crash only", style="yellow"),
                Text(f"{s['decisions_reached']}/{s['jobs']}",
                     style="green" if s["every_decision_reached"] else "yellow"),
                Text(str(s["safety_violations"]), style="green" if not s["safety_violations"] else "bold red"),
                f"{_num(lat['mean'])}/{_num(lat['p50'])}/{_num(lat['p99'])}",
                f"{_num(prog['mean'], 2)} {unit}",
            )
        return table

    def _costs(self, summaries: dict[str, dict[str, Any]]) -> Table:
        table = self._table("cost per decision", ("method", "normal (ref)", "msgs/dec", "bytes/dec", "LLM calls",
                                                  "tokens", "faults"))
        for name, s in summaries.items():
            m, llm = s["messages"], s["llm"]
            table.add_row(
                name,
                f"{_num(m['normal_case_per_decision'])} ({m['reference_per_decision']})",
                _num(m["per_decision"]),
                _num(m["bytes_per_decision"], 0),
                str(llm["calls"]),
                str(llm["tokens_in"] + llm["tokens_out"]),
                _num(s["faults"]["active_per_job"], 2),
            )
        return table
