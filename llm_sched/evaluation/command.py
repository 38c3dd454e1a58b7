"""``python main.py --evaluate [--quick] [--config FILE] [--out DIR] [--workers N] [--seed N]``.

:func:`run_campaign_cli` picks the campaign file (``--config``: a name in scenarios/evaluation or a
path; ``--quick``: scenarios/evaluation/quick.yaml; neither: full.yaml), the output folder (default
``<runs dir>/evaluation/<timestamp>``) and the number of worker processes (default: the CPUs this
process may use), runs the campaign with a progress bar and prints where the report is.
"""

from __future__ import annotations

import shlex


def command_line(config_path: str | None, out_dir: str | None, quick: bool, workers: int | None,
                 seed: int | None) -> str:
    """The command that runs this campaign, as the report states it."""
    args = ["python", "main.py", "--evaluate"]
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
    return shlex.join(args)


def run_campaign_cli(config_path: str | None, out_dir: str | None, quick: bool, workers: int | None,
                     seed: int | None) -> int:
    """Run a campaign from the command line's flags; returns the exit code (0, 2 for a user error,
    130 when interrupted). Errors are printed as one line, never a traceback."""
    from pathlib import Path

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
        from llm_sched.evaluation.runner import default_workers
        from llm_sched.ui.campaign_view import CampaignView

        if quick and config_path is not None:
            raise UserError("--quick runs scenarios/evaluation/quick.yaml: give either --quick or --config FILE")
        if workers is not None and workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        if seed is not None and seed < 0:
            raise UserError(f"--seed must not be negative, got {seed}")
        settings = load_settings()
        file = campaign_path(config_path or ("quick" if quick else "full"), settings.scenarios_dir)
        config = load_campaign(file, seed=seed)
        n_workers = workers or default_workers()
        folder = Path(out_dir) if out_dir is not None else default_folder(settings.runs_dir)
        command = command_line(config_path, out_dir, quick, workers, seed)
        view = CampaignView(console)
        plan: list[str] = []

        def on_start(tasks: int, reused: int) -> None:
            dims = ", ".join(config.dimensions.present())
            plan.extend([
                f"campaign file {file}",
                f"{tasks // config.repetitions} configurations ({dims}) x {config.repetitions} repetitions "
                f"(seeds {config.seed}..{config.seed + config.repetitions - 1}) x {len(config.policies)} policies "
                f"({', '.join(config.policies)})",
                f"{n_workers} worker process(es); output {folder}",
            ])
            if reused:
                plan.append(f"resuming: {reused} of {tasks} tasks are already in {folder / 'results.json'}")
            view.header(f"evaluation campaign: {config.name}", plan)

        with view.progress() as report:
            result = run_campaign(config, folder, workers=n_workers, command=command, config_file=str(file),
                                  on_start=on_start, on_progress=report)
        view.outcome(result)
        return 0
    except UserError as exc:
        errors.print(f"error: {exc}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        where = f"; the finished runs are in {folder}/results.json: run the same command with --out {folder} " \
                "to resume" if folder is not None and (folder / "results.json").is_file() else ""
        errors.print(f"interrupted{where}", markup=False, soft_wrap=True)
        return 130
