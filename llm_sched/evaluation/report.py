"""The campaign's Markdown report (``report.md``): how it was run (command, seeds, configuration),
the generated findings, one figure and one table per dimension, and the statistics of agents against
each baseline, metric by metric. It formats what it is given; it computes no statistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llm_sched.agents.pool_adviser import DEFAULT_MARGIN
from llm_sched.evaluation.analysis import Analysis
from llm_sched.evaluation.config import CampaignConfig
from llm_sched.evaluation.design import ADVICE_TICKS, DIMENSION_TITLES
from llm_sched.evaluation.findings import ALPHA, name
from llm_sched.evaluation.metrics import FIGURE_METRICS, KEY_METRICS, METRICS
from llm_sched.evaluation.optimum_gap import Gap, gap_section
from llm_sched.evaluation.stats import BOOTSTRAP_RESAMPLES, show_effect, show_p, smallest_p


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    marks = [("---:" if (align[i] if i < len(align) else "r") == "r" else "---") for i in range(len(head))]
    return [_row(head), "| " + " | ".join(marks) + " |", *(_row(r) for r in rows), ""]


ADVICE_WHEN = {"llm": "on every decision with a choice (more than one pool could take the job)",
               "hybrid": "only on a close call (the two best bidders that can each hold the whole job score within "
                         f"{DEFAULT_MARGIN:g} of each other; otherwise the heuristic award stands, without a call)"}


def advice_lines(config: CampaignConfig) -> list[str]:
    """How the agents' awards are chosen when a model chooses some (none for heuristic agents only)."""
    b = config.base
    if not config.needs_model:
        return []
    modes = [m for m in config.advice_modes if m != "heuristic"]
    how = "; ".join(f"{ADVICE_TICKS[m]} agents ask it {ADVICE_WHEN[m]}" for m in modes)
    where = [w for w, asks in (("the base scenario's", b.advice != "heuristic"),
                               ("the advice dimension's", any(m not in ("heuristic", b.advice)
                                                             for m in config.dimensions.advice or ()))) if asks]
    lines = [
        f"- Agents' advice: {' and '.join(where)} "
        f"{' and '.join(ADVICE_TICKS[m] for m in modes)} agents let a model choose the award: the decision's "
        f"leader asks it, at most {b.llm_budget} model call{'s' if b.llm_budget != 1 else ''} per agents run "
        f"(the budget); {how}. The model picks among the bidding pools shown as lettered options (the letters an "
        "enum of its answer's JSON schema, the scores recomputed from the shared state); its choice is checked as "
        "a valid award, and otherwise, or once the budget is spent, the heuristic award is proposed instead "
        "(a fallback, counted). Voters accept any valid award (they cannot recompute the model's choice) and "
        "every award still needs a quorum certificate. The central schedulers ask no model. Where the answers "
        "came from is in \"What was measured and how\".",
    ]
    if b.advice != "heuristic":
        lines.append("- The one-run figures and the gap to the optimum simulate the base scenario again with "
                     "heuristic agents: the model is not asked again for them.")
    return lines


def setup_section(config: CampaignConfig) -> list[str]:
    """The settings: base scenario, deadline, failures, dimensions, advice, statistics."""
    b = config.base
    seeds = f"{config.seed}" if config.repetitions == 1 else f"{config.seed} to {config.seed + config.repetitions - 1}"
    if config.deadline_factor is None:
        deadline = ("No deadline: every run goes on until every job has completed, so the completion rate is "
                    "100% by construction and the cost of failures shows in waits and makespan only.")
    else:
        deadline = (f"Deadline: each run stops {config.deadline_factor:g} x the makespan that EASY achieves on the "
                    "same jobs with no failure and no decision delay (a reference run per configuration and seed). "
                    "Jobs not completed by then count as not completed, so the completion rate measures how much "
                    "of the work each policy gets done in a fixed time budget despite the failures. Makespan and "
                    "utilization are those of the completed jobs.")
    lines = [
        "## Set-up", "",
        f"- Policies: {', '.join(name(p) for p in config.policies)}; agents are compared with "
        f"{' and '.join(name(p) for p in config.baselines)}.",
        f"- Repetitions: {config.repetitions} per configuration, seeds {seeds}: repetition r uses seed "
        f"{config.seed} + r in every configuration. Within a configuration and seed every policy meets the "
        "same jobs and the same failures; across a dimension's values the seeds are the same (common random "
        "numbers).",
        f"- {deadline}",
        f"- Base scenario: {b.jobs} jobs, {b.agents} agents of {b.nodes_per_agent} nodes each, {b.arrival} arrivals "
        f"at offered load {b.load:g} (bursts of {b.burst_size}). The agents decide every award through the "
        f"decision engine: signed votes, a {b.protocol} run among the agents on the seeded simulated network "
        f"with {b.hop_delay:g} s per message delay, a quorum certificate for every award (checked by "
        "`python main.py --verify RUN_ID`); messages, bytes and consensus latency are counted there, not "
        "modelled. A Byzantine agent lies in its signed votes and, in the protocol, through the same "
        "behaviour wrapping its core (silent: nothing; vote flipping: votes against the award, and when it "
        "leads proposes no award; equivocate: two contradicting votes; forge: votes in others' names; "
        "inflated scores: bids claiming a score of 1, and when it leads proposes the award its claims rank "
        "first); the first leader of each decision rotates with the decision number, and a leader's "
        "proposal that the honest agents refuse costs a view change. The central schedulers "
        "have no agents to corrupt. The central scheduler's queue is "
        f"{'kept' if b.queue_on_failure == 'keep' else 'lost'} when it fails.",
        f"- Failures: each agent fails with probability {b.failure_rate:g} within the run's horizon "
        f"({b.pattern} pattern), repaired after an exponential time of mean {_hours(b.repair_mean)}; each node "
        f"fails with probability {b.node_rate:g}, repaired after a mean {_hours(b.node_repair_mean)}. Cascades: "
        f"probability {b.cascade_prob:g} per ring neighbour within {_hours(b.cascade_window)}. Partitions cut off "
        f"{b.partition_fraction:.0%} of the agents. The central scheduler runs beside agent 0's pool and fails "
        "with it.",
        *advice_lines(config),
        "- Dimensions (one changed at a time from the base):",
    ]
    d = config.dimensions
    if d.scale is not None:
        jobs, agents = ", ".join(map(str, d.scale.jobs)), ", ".join(map(str, d.scale.agents))
        lines.append(f"  - scale: jobs {jobs} x agents {agents}")
    if d.failure_rate is not None:
        lines.append(f"  - failure rate: {', '.join(f'{100 * r:g}%' for r in d.failure_rate)}")
    if d.failure_pattern is not None:
        lines.append(f"  - failure pattern: {', '.join(d.failure_pattern)}")
    if d.load_pattern is not None:
        lines.append(f"  - load pattern: {', '.join(d.load_pattern)}")
    if d.high_load is not None:
        lines.append(f"  - high load: {', '.join(map(str, d.high_load))} jobs arriving at once")
    if d.byzantine is not None:
        lines.append(f"  - Byzantine agents: {', '.join(map(str, d.byzantine))} ({b.behaviour.replace('_', ' ')}), "
                     "chosen per seed")
    if d.byzantine_behaviour is not None:
        lines.append(f"  - Byzantine behaviour: {', '.join(x.replace('_', ' ') for x in d.byzantine_behaviour)} "
                     f"({max(1, b.byzantine)} agent{'s' if max(1, b.byzantine) > 1 else ''}, chosen per seed)")
    if d.advice is not None:
        lines.append(f"  - agents' advice: {', '.join(ADVICE_TICKS[m] for m in d.advice)} (at most {b.llm_budget} "
                     f"model calls per agents run; the other dimensions' agents: {ADVICE_TICKS[b.advice]})")
    lines += [
        f"- Statistics (SciPy): per configuration and policy the mean with a 95% bootstrap confidence interval "
        f"(BCa, {BOOTSTRAP_RESAMPLES:,} resamples, fixed seed; it lies within the values' range, so within the "
        "metric's domain), shown as mean [low, high]. Agents against each baseline, paired by seed (both "
        "policies meet the same jobs and failures): the Wilcoxon signed-rank test of the paired differences "
        "(two-sided, exact for few pairs, zero differences dropped), its p-value after Holm's correction over "
        "the configurations (one family per baseline and metric), the matched-pairs rank-biserial correlation r "
        "of agents minus baseline (in [-1, 1], positive when agents' value is higher, whichever direction is "
        "better), and per-repetition wins/ties/losses. \"identical\": every paired difference is zero. "
        f"Significant means Holm-adjusted p < {ALPHA:g}; the findings call a difference significant only then. "
        f"With {config.repetitions} pairs the smallest p the exact test can give is "
        f"{smallest_p(config.repetitions):.3g}. "
        "Undefined values (the MTTR of a run in which no job was killed) are left out; n says how many remain.",
        "",
    ]
    if config.repetitions < 5:
        lines += [f"> Only {config.repetitions} repetitions: the statistics are indicative only.", ""]
    return lines


def dimension_section(analysis: Analysis, dimension: str, figure: Path | None) -> list[str]:
    """A dimension's figure and its table of means with 95% confidence intervals."""
    lines = [f"### {DIMENSION_TITLES[dimension]}", ""]
    if figure is not None:
        lines += [f"![{DIMENSION_TITLES[dimension]}]({figure.name})", ""]
    head = ["configuration", "policy", *(METRICS[m].label for m in FIGURE_METRICS)]
    rows = []
    for c in analysis.in_dimension(dimension):
        for p in analysis.policies:
            cells = [c.label, name(p)]
            for m in FIGURE_METRICS:
                s = analysis.summaries[c.key][p][m]
                cells.append(METRICS[m].show_ci(s.mean, s.low, s.high))
            rows.append(cells)
    return lines + markdown_table(head, rows, "ll")


def comparison_section(analysis: Analysis, metric_name: str) -> list[str]:
    """One metric: each policy's mean with CI, then agents against each baseline, per configuration."""
    metric = METRICS[metric_name]
    head = ["configuration", "n", *(name(p) for p in analysis.policies)]
    for b in analysis.baselines:
        head += [f"vs {name(b)}: p (Wilcoxon)", "p (Holm)", "r", "won/tied/lost"]
    rows = []
    for c in analysis.configs:
        summaries = analysis.summaries[c.key]
        n = summaries["agents"][metric_name].n
        cells = [c.label, str(n)]
        for p in analysis.policies:
            s = summaries[p][metric_name]
            cells.append(metric.show_ci(s.mean, s.low, s.high))
        for b in analysis.baselines:
            cmp = analysis.comparisons[c.key][b][metric_name]
            if cmp.identical:
                cells += ["identical", "identical", "identical"]
            else:
                cells += [show_p(cmp.p, cmp.note), show_p(cmp.p_holm, cmp.note), show_effect(cmp.r, cmp.note)]
            cells.append(f"{cmp.wins}/{cmp.ties}/{cmp.losses}")
        rows.append(cells)
    return [f"### {metric.label[0].upper() + metric.label[1:]} ({metric.better} is better)", "",
            *markdown_table(head, rows, "l")]


EXAMPLE_CAPTIONS: dict[str, str] = {
    "gantt": "Every job attempt of one run (the base scenario, the first seed), per policy; red: killed by a failure.",
    "cdf": "The distributions of wait and bounded slowdown over that run's completed jobs.",
    "utilization": "The share of nodes computing over that run, per policy; shaded: agent outages and partitions.",
    "messages": "The agents' messages per decision against n on log axes: the scale dimension's means (measured) "
                "and the protocol's normal-case formula.",
}

# What every figure of the report is, and where it comes from.
MEASURED: tuple[tuple[str, str, str], ...] = (
    ("waits, bounded slowdown, makespan, utilization, completion rate", "measured",
     "from the simulated run's events (submissions, starts, ends, kills)"),
    ("availability, decision availability, MTTR, failures, kills, lost work", "measured",
     "from the run's events; the failures themselves are drawn from the seed (random, cascading, partition)"),
    ("failure detection time", "modelled",
     "a phi-accrual detector (heartbeat 1 s, threshold 8) over a seeded heartbeat history"),
    ("messages, bytes and consensus latency per decision (agents)", "measured",
     "counted on the engine's simulated network: every agent's protocol core runs, messages are delivered "
     "with a fixed delay per hop (the configuration's hop delay), latency = simulated time to decide"),
    ("quorum certificates (agents)", "measured", "Ed25519 signatures of the agents, stored in the ledger, checked "
     "by python main.py --verify RUN_ID"),
    ("central schedulers' decisions", "modelled as free", "no messages and no delay: a local decision"),
    ("the optimum", "computed", "OR-Tools CP-SAT on one failure-free instance, knowing every arrival and run time; "
     "proven optimal or bounded, as its section says"),
    ("job run times and estimates", "modelled", "drawn from the seed (synthetic workloads)"),
)


def example_section(config: CampaignConfig, examples: Mapping[str, Path]) -> list[str]:
    """One run's figures and the message cost figure."""
    if not examples:
        return []
    lines = ["## One run, and what decisions cost", ""]
    for key, path in examples.items():
        lines += [EXAMPLE_CAPTIONS.get(key, key), "", f"![{key}]({path.name})", ""]
    return lines


def model_row(model: Mapping[str, Any] | None) -> list[list[str]]:
    """The row of the model's answers (a campaign whose agents asked one): where they came from, the
    counts, and that no Byzantine agent rewrites them."""
    if not model:
        return []
    sources = model.get("sources") or []
    replay = model.get("provider") == "replay"
    if sources:
        where = "; ".join(sources)
    else:  # every task was stored by an earlier invocation that did not say
        where = "replayed cassettes" if replay else f"the live {model.get('provider')} provider"
    kept = ("the output folder's cassettes/ holds the cassettes replayed, one per configuration and repetition"
            if replay else "recorded to the output folder's cassettes/, one cassette per configuration and repetition, "
            "which a campaign with model: {provider: replay, cassettes: THAT_FOLDER} replays")
    counts = ""
    if model.get("runs"):
        counts = (f" Over the {model['runs']} agents runs that asked it: {model.get('llm_calls', 0)} calls, "
                  f"{model.get('llm_choices', 0)} awards proposed as the model chose them, "
                  f"{model.get('llm_fallbacks', 0)} heuristic fallbacks.")
    how = (f"answers from {where} ({kept}); at most {model.get('llm_budget')} calls per agents run, counted by the "
           f"adviser (llm_calls, llm_choices, llm_fallbacks in results.json).{counts} No Byzantine agent rewrites "
           "the model's answer: the decision's leader puts the model's checked choice to the vote as it is, and "
           "the Byzantine behaviours act on bids and signed votes only (silent: no bid, so its pool is not an "
           "option; inflated scores: a claimed bid score, which neither the prompt (it shows recomputed scores) "
           "nor the award uses; vote flipping, equivocation, forging: votes), so an award counted as the model's "
           "is its own choice, which the quorum then certifies or refuses.")
    return [["the model's answers (llm and hybrid agents): calls, choices, fallbacks", "measured", how]]


def measured_section(model: Mapping[str, Any] | None = None) -> list[str]:
    """The table of what was measured and how (``model``: the campaign's ``run_info["model"]``)."""
    rows: list[list[str]] = [list(row) for row in MEASURED] + model_row(model)
    return ["## What was measured and how", "", *markdown_table(["figure", "measured or modelled", "how"], rows, "lll")]


def _config_file(run_info: Mapping[str, Any]) -> str:
    if run_info.get("config_file"):
        return f"`{run_info['config_file']}`"
    if run_info.get("run_id") and run_info.get("reused"):
        return f"(the configuration stored with the ledger run `{run_info['run_id']}`)"
    return "`(given in code)`"


def render(config: CampaignConfig, analysis: Analysis, findings: Sequence[str], figures: Mapping[str, Path],
           run_info: Mapping[str, Any], examples: Mapping[str, Path] | None = None, gap: Gap | None = None) -> str:
    """The whole report as Markdown."""
    runs = len(analysis.configs) * analysis.repetitions * len(analysis.policies)
    lines = [f"# Evaluation campaign: {config.name}", ""]
    if config.description:
        lines += [config.description.strip(), ""]
    lines += [
        f"- Command: `{run_info['command']}`",
        f"- Configuration file: {_config_file(run_info)}",
        f"- Seeds: {', '.join(map(str, run_info['seeds']))} (repetition r uses seed {config.seed} + r)",
        f"- Size: {len(analysis.configs)} configurations x {analysis.repetitions} repetitions x "
        f"{len(analysis.policies)} policies = {runs} simulated runs",
        f"- Ran {run_info['started']} on {run_info.get('executor') or str(run_info['workers']) + ' worker process(es)'}: "
        "simulations "
        f"{run_info['simulation_s']:.1f} s, with statistics and figures {run_info['wall_s']:.1f} s "
        f"(Python {run_info['python']}, llm-sched {run_info['version']})",
    ]
    if run_info.get("reused"):
        counts = run_info.get("reused_from") or {"results.json": run_info["reused"]}
        sources = [f"{n} in the ledger run `{run_info.get('run_id')}`" if where == "ledger" else
                   f"{n} in the results.json of an earlier invocation with the same configuration"
                   for where, n in counts.items() if n]
        tasks = len(analysis.configs) * analysis.repetitions
        lines.append(f"- Resumed: {run_info['reused']} of the {tasks} (configuration, repetition) tasks were stored "
                     f"by an earlier invocation ({', '.join(sources)}); {tasks - run_info['reused']} ran in this one")
    lines += ["- Files: results.json (every run's metrics), summary.csv (means and CIs), comparisons.csv "
              "(agents against the baselines)", ""]
    lines += ["## Findings", "", "Generated from the statistics below (a difference is called significant when "
              "the paired Wilcoxon signed-rank test gives p < 0.05 after Holm's correction over the configurations).",
              ""]
    lines += [f"- {f}" for f in findings] + [""]
    lines += setup_section(config)
    lines += ["## Results by dimension", "",
              "Means with 95% bootstrap confidence intervals [low, high]; the figures show the same numbers.", ""]
    for d in analysis.dimensions():
        lines += dimension_section(analysis, d, figures.get(d))
    lines += example_section(config, examples or {})
    lines += gap_section(gap)
    lines += measured_section(run_info.get("model"))
    lines += ["## Agents against the baselines", "",
              "Per configuration: the mean of each policy [95% bootstrap CI], then for each baseline the paired "
              "Wilcoxon signed-rank p-value, the same after Holm's correction over the configurations, the "
              "rank-biserial correlation r of agents minus baseline, and the per-repetition wins, ties and losses "
              "of agents.", ""]
    for m in KEY_METRICS:
        lines += comparison_section(analysis, m.name)
    return "\n".join(lines).rstrip() + "\n"
