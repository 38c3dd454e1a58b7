"""``python main.py --evaluate [--quick] [--config FILE] [--out DIR] [--workers N] [--seed N]`` and
``python main.py --evaluate --resume DIR``.

:func:`run_campaign_cli` picks the campaign file (``--config``: a name in scenarios/evaluation or a
path; ``--quick``: scenarios/evaluation/quick.yaml; neither: full.yaml), the output folder (default
``<runs dir>/evaluation/<timestamp>``) and the number of worker processes (default: the CPUs this
process may use), runs the campaign with a progress bar and prints where the report is. Every
finished task is stored in the ledger (``settings.ledger_path``).

``--resume DIR`` (DIR: the ``--out`` folder of a campaign, or its ledger run id) continues the
campaign stored for DIR with the configuration stored with it, so the flags that chose it need not
be repeated; given again, they must describe the same campaign. A folder written by an older
version (a results.json, no ledger run) is resumed from its results.json.

Agents whose awards a model chooses (``advice: llm`` or ``hybrid`` in the campaign file) ask the
file's ``model.provider``, else the configured provider (``LLM_SCHED_PROVIDER``); a live model's
answers are recorded to ``<out>/cassettes/``, and ``model: {provider: replay, cassettes: DIR}``
replays them (see :mod:`llm_sched.evaluation.campaign`). The plan names where the answers come from.

The campaign itself is :mod:`llm_sched.evaluation`; this front end turns the flags into a run of it
and shows it with :mod:`llm_sched.ui.campaign_view`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_sched.config import Settings
    from llm_sched.evaluation.config import CampaignConfig


def command_line(config_path: str | None, out_dir: str | None, quick: bool, workers: int | None,
                 seed: int | None, resume: str | None = None, executor: str = "local",
                 scheduler: str | None = None) -> str:
    """The command that runs this campaign, as the report states it."""
    args = ["python", "main.py", "--evaluate"]
    if resume is not None:
        args += ["--resume", resume]
    if quick:
        args.append("--quick")
    if config_path is not None:
        args += ["--config", config_path]
    if out_dir is not None:
        args += ["--out", out_dir]
    if workers is not None:
        args += ["--workers", str(workers)]
    if seed is not None:
        args += ["--seed", str(seed)]
    if executor != "local":
        args += ["--executor", executor]
    if scheduler is not None:
        args += ["--scheduler", scheduler]
    return shlex.join(args)


def resume_target(target: str, ledger_path: Path, *, config_path: str | None, quick: bool, seed: int | None,
                  out_dir: str | None, scenarios_dir: Path) -> tuple[CampaignConfig, Path, str | None, str | None]:
    """What ``--resume TARGET`` continues: (configuration, folder, ledger run id or None, the
    configuration file the campaign was started from, if known). Raises a one-line
    :class:`~llm_sched.errors.UserError` when nothing is stored or the flags describe another campaign."""
    from llm_sched.errors import UserError
    from llm_sched.evaluation.config import campaign_path, load_campaign, parse_campaign
    from llm_sched.evaluation.output import RESULTS, campaign_dump, read_results
    from llm_sched.evaluation.resume import find_stored, first_difference, folder_key
    from llm_sched.store.ledger import StoreError

    info = find_stored(ledger_path, "campaign", target)
    results: dict[str, object] = {}
    if info is not None:
        folder = Path(info.run_dir or target)
        stored, origin = info.config, f"campaign stored with ledger run {info.run_id}"
        if (folder / RESULTS).is_file():
            results = read_results(folder / RESULTS)
    else:
        folder = Path(target)
        if not (folder / RESULTS).is_file():
            raise StoreError(f"--resume {target}: no campaign is stored for the folder {folder_key(target)}: the "
                             f"ledger {ledger_path} has no campaign run for it, nor is there a {RESULTS} in it; give "
                             f"the --out folder of a campaign, or start one with python main.py --evaluate")
        results = read_results(folder / RESULTS)
        stored, origin = results.get("campaign"), str(folder / RESULTS)
        if not isinstance(stored, dict):
            raise UserError(f"{origin}: no campaign configuration in it")
    config = parse_campaign(dict(stored), origin)
    if out_dir is not None and folder_key(out_dir) != folder_key(folder):
        raise UserError(f"--resume {target} writes into {folder}, its own folder; --out {out_dir} names another: "
                        "drop --out")
    given = None
    if quick or config_path is not None:
        file = campaign_path(config_path or "quick", scenarios_dir)
        given, what = load_campaign(file, seed=seed), f"--config {config_path}" if config_path else "--quick"
        if seed is not None:
            what += f" --seed {seed}"
    elif seed is not None:
        given, what = config.model_copy(update={"seed": seed}), f"--seed {seed}"
    if given is not None and campaign_dump(given) != campaign_dump(config):
        raise UserError(f"--resume {target}: {what} describes another campaign than the one stored for {folder} "
                        f"({first_difference(campaign_dump(config), campaign_dump(given))}); resume without "
                        "--quick/--config/--seed to continue it as stored, or give a new --out to run the other one")
    run_info = results.get("run_info") if isinstance(results.get("run_info"), dict) else {}
    config_file = run_info.get("config_file") if isinstance(run_info, dict) else None
    return config, folder, None if info is None else info.run_id, config_file


def run_campaign_cli(config_path: str | None, out_dir: str | None, quick: bool, workers: int | None,
                     seed: int | None, resume: str | None = None, force: bool = False, executor: str = "local",
                     scheduler: str | None = None) -> int:
    """Run (or with ``resume``, continue) a campaign from the command line's flags; returns the exit
    code (0, 2 for a user error, 130 when interrupted). Errors are printed as one line, never a traceback."""
    from rich.console import Console

    from llm_sched.errors import UserError

    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    folder: Path | None = None
    try:
        from llm_sched.config import load_settings
        from llm_sched.evaluation.campaign import run_campaign
        from llm_sched.evaluation.config import campaign_path, load_campaign
        from llm_sched.evaluation.output import default_folder
        from llm_sched.evaluation.runner import Executor, default_workers
        from llm_sched.ui.campaign_view import CampaignView

        if quick and config_path is not None:
            raise UserError("--quick runs scenarios/evaluation/quick.yaml: give either --quick or --config FILE")
        if workers is not None and workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        if seed is not None and seed < 0:
            raise UserError(f"--seed must not be negative, got {seed}")
        if force and resume is not None:
            raise UserError("--force runs a campaign afresh, --resume continues one: give one of them")
        if executor not in ("local", "dask"):
            raise UserError(f"--executor must be local or dask, got {executor!r}")
        if scheduler is not None and executor != "dask":
            raise UserError("--scheduler ADDRESS names a Dask scheduler: give it with --executor dask")
        settings = load_settings()
        ledger = settings.ledger_path
        claim: str | None = None
        if resume is not None:
            config, folder, claim, stored_file = resume_target(
                resume, ledger, config_path=config_path, quick=quick, seed=seed, out_dir=out_dir,
                scenarios_dir=settings.scenarios_dir)
            source = f"campaign stored for {folder}" + (f" (ledger run {claim})" if claim else "")
            config_file = stored_file
        else:
            file = campaign_path(config_path or ("quick" if quick else "full"), settings.scenarios_dir)
            config = load_campaign(file, seed=seed)
            folder = Path(out_dir) if out_dir is not None else default_folder(settings.runs_dir)
            source = f"campaign file {file}"
            config_file = str(file)
        n_workers = workers or default_workers()
        run_on = Executor(n_workers, executor == "dask", scheduler)
        command = command_line(config_path, out_dir, quick, workers, seed, resume, executor, scheduler)
        view = CampaignView(console)

        def on_start(tasks: int, reused: int) -> None:
            view.header(f"evaluation campaign: {config.name}",
                        plan_lines(config, source, tasks, reused, run_on.describe(), folder, ledger, settings))

        with view.progress() as report:
            result = run_campaign(config, folder, workers=run_on, command=command, config_file=config_file,
                                  on_start=on_start, on_progress=report, ledger=ledger, claim=claim,
                                  on_existing="resume" if resume is not None else "replace" if force else "refuse",
                                  settings=settings)
        view.outcome(result)
        return 0
    except UserError as exc:
        errors.print(f"error: {exc}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        where = f"; the finished tasks are stored: resume with python main.py --evaluate --resume {folder}" \
            if folder is not None else ""
        errors.print(f"interrupted{where}", markup=False, soft_wrap=True)
        return 130


def plan_lines(config: CampaignConfig, source: str, tasks: int, reused: int, workers: str, folder: Path,
               ledger: Path, settings: Settings | None = None) -> list[str]:
    """The campaign's plan, as the header prints it (with ``settings``: where a model's answers come from)."""
    dims = ", ".join(config.dimensions.present())
    lines = [
        source,
        f"{tasks // config.repetitions} configurations ({dims}) x {config.repetitions} repetitions "
        f"(seeds {config.seed}..{config.seed + config.repetitions - 1}) x {len(config.policies)} policies "
        f"({', '.join(config.policies)})",
        f"{workers}; output {folder}; ledger {ledger}",
    ]
    if reused:
        lines.append(f"resuming: {reused} of {tasks} tasks are already stored, {tasks - reused} to run")
    if config.needs_model:
        lines.append(model_line(config, folder, settings))
    return lines


def model_line(config: CampaignConfig, folder: Path, settings: Settings | None) -> str:
    """Who answers the model's agents: the advice, the budget, the provider, the cassettes."""
    from llm_sched.evaluation.campaign import CASSETTES

    modes = ", ".join(m for m in config.advice_modes if m != "heuristic")
    block = config.model
    provider = block.provider if block is not None and block.provider else \
        (settings.resolved_provider() if settings is not None else "the configured provider")
    if provider == "replay":
        cassettes = block.cassettes if block is not None and block.cassettes else folder / CASSETTES
        where = f"replayed from {cassettes}"
    else:
        where = f"live {provider}, recorded to {folder / CASSETTES}"
    return f"agents' advice {modes}: at most {config.base.llm_budget} model calls per agents run; answers {where}"
