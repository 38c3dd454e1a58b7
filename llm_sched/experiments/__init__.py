"""Protocol experiments: consensus methods x repetitions under faults, with exact accounting.

``python main.py --experiment [FILE]`` runs one (see :mod:`llm_sched.experiments.experiment`).
Modules, one job each: ``config`` (the YAML file, flags, checks), ``methods`` (the registry of
protocols), ``jobs`` (the seeded workload), ``faultplan`` (one repetition's faults), ``agents`` (the
agent layer the protocols ask), ``run`` (one method x one repetition), ``metrics`` (aggregation),
``output`` (the files).
"""
