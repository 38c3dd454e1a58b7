"""What ``python main.py`` with no flags prints: what llm-sched is, and a command for each mode."""

from __future__ import annotations

from llm_sched import __version__

# (command, what it does): the overview printed by ``python main.py`` with no flags.
MODES: tuple[tuple[str, str], ...] = (
    ("python main.py --interactive", "healthy, Byzantine and recovery scenarios with every prompt and answer shown"),
    ("python main.py --scenario NAME", "run one scenario (healthy, byzantine, recovery, fault_tolerance, ...)"),
    ("python main.py --scenario supercomputers", "six supercomputers bid for eight large jobs; one turns Byzantine"),
    ("python main.py --scenario NAME --executor slurm", "run the committed jobs on Slurm, on the nodes the agents "
     "chose (or local)"),
    ("python main.py --experiment [FILE]", "consensus protocols (PBFT, Tendermint, Multi-Paxos, Raft...) under faults"),
    ("python main.py --simulate --trace FILE --policy P", "replay an SWF trace under fcfs, sjf, easy, conservative or "
     "agents, with failures: metrics, CSV, plot"),
    ("python main.py --evaluate [--quick]", "the resilience campaign: agents vs FCFS/SJF/EASY/conservative, statistics, "
     "figures, report"),
    ("python main.py --peers", "policies, agents (heuristic, model) and the CP-SAT optimum on seven peer scenarios"),
    ("python main.py --runs", "list the runs stored in the ledger; --show RUN_ID prints one run's decisions"),
    ("python main.py --resume RUN_ID", "continue a scenario run that was killed, after its last committed decision"),
    ("python main.py --verify RUN_ID", "check every quorum certificate (signed votes) of a stored run, offline"),
    ("python main.py serve [--port N]", "the web view of stored and running runs"),
    ("python main.py federation up FILE", "the agents as processes on a NATS bus (then submit, status, chaos)"),
    ("python main.py --check", "check Python, packages, LLM endpoints and shipped cassettes"),
    ("python main.py --setup-env", "guided setup of ./.env (provider, endpoint, key)"),
)

OVERVIEW = """\
llm-sched {version}: specialist LLM agents (GPU, memory, compute, storage, general) that
schedule HPC jobs by Byzantine fault-tolerant consensus. Each agent proposes a placement and
votes on candidates; a placement commits only with a Byzantine quorum (4 of 5, 5 of 7), so lying,
silent or crashed agents cannot push a bad placement through. Models: a local GGUF model run by
llama.cpp, any OpenAI-compatible server, Ollama, SambaNova Cloud or SambaStudio; offline, cassettes
recorded from a real model, or the agents' heuristics, answer instead.

Modes:
{modes}

Settings come from the environment, ./.env and ~/.env (see .env.example).
Every flag: python main.py --help"""


def overview() -> str:
    """The overview, with the modes' commands lined up."""
    width = max(len(command) for command, _ in MODES)
    modes = "\n".join(f"  {command.ljust(width)}  {what}" for command, what in MODES)
    return OVERVIEW.format(version=__version__, modes=modes)
