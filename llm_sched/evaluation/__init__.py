"""The resilience evaluation campaign (issue 7): decentralized agents against central FCFS, SJF, EASY
and conservative backfilling over seven dimensions (scale, failure rate, failure pattern, load
pattern, high load, Byzantine agents and their behaviour), many seeded
repetitions, statistics with SciPy, figures with Matplotlib and a Markdown report.

Modules, one job each: :mod:`.config` (the YAML file, validated), :mod:`.design` (configurations and
seeds), :mod:`.runner` (simulations over worker processes), :mod:`.stats` (CIs and tests),
:mod:`.analysis` (statistics of every configuration), :mod:`.findings` (generated sentences),
:mod:`.figures`, :mod:`.report`, :mod:`.output` (folder and data files), :mod:`.resume` (the ledger
run and units behind a campaign's or an experiment's folder) and :mod:`.campaign` (all of it in
order). The ``--evaluate`` entry point is the command line's, :mod:`llm_sched.cli.campaign`. SciPy and
Matplotlib are imported only when statistics are computed or figures drawn.
"""
