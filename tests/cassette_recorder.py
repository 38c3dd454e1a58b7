"""Record the shipped scenario cassettes from the stand-in server acting as a deterministic model.

No LLM service is reachable where llm-sched is developed, so the shipped cassettes are recorded from
``tests/standin.py``: it answers each prompt from what the prompt says (the option with the best
heuristic score, accept exactly when the feasibility check passed), and on purpose answers some
prompts badly (broken JSON, an option that was not offered) so that repairs and fallbacks appear.
The cassettes' metadata says so. With a real endpoint, ``python main.py --scenario NAME --record``
re-records them from the model.

Run: ``python -m tests.cassette_recorder [scenario ...]`` (default: every shipped scenario).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

from llm_sched.config import PROJECT_ROOT, load_settings
from llm_sched.runner import run_scenario
from llm_sched.scenarios import available_scenarios, load_scenario
from tests.standin import Reply, RequestRecord, StandIn

HOW = ("stand-in server (tests/standin.py) answering as a deterministic model from the prompt's facts, "
       "with deliberate broken answers; not a live LLM")
PROVIDERS = ("ollama", "sambanova")
_OPTION = re.compile(r"^([A-Z]): pool (\S+), nodes .*?; heuristic score ([0-9.]+)", re.M)
_JOB = re.compile(r"Job (\S+) \(")


def _texts(record: RequestRecord) -> list[str]:
    body = record.body or {}
    return [m["content"] for m in body.get("messages", []) if isinstance(m.get("content"), str)]


def _bucket(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100


def answer(record: RequestRecord, faults: bool = True) -> Reply:
    """The stand-in model: a good answer from the prompt's facts; with ``faults``, sometimes a bad one."""
    texts = _texts(record)
    prompt = next((t for t in texts if _JOB.search(t)), "")
    repairing = len(texts) > 2 and "not valid" in texts[-1]
    job = _JOB.search(prompt)
    job_id = job.group(1) if job else "?"
    bucket = _bucket(prompt) if faults else 50  # 50: a bucket that is never a deliberate fault
    options = _OPTION.findall(prompt)
    if options:
        if not repairing and bucket < 6:
            return Reply.text('{"job_id": "%s", "option_id": "A", "score": 0.9, "reasoning": "fits' % job_id)
        if bucket >= 93:  # insists on an option that was not offered: invalid, the agent falls back
            return Reply.json({"job_id": job_id, "option_id": "Z", "score": 0.9, "reasoning": "option Z is best"})
        letter, pool, score = max(options, key=lambda o: (float(o[2]), -ord(o[0])))
        return Reply.json({"job_id": job_id, "option_id": letter, "score": round(min(1.0, float(score) + 0.03), 2),
                           "reasoning": f"Pool {pool} has the best balance of fit, load and specialisation."})
    feasible = "Deterministic feasibility check against the live state: feasible" in prompt
    if not repairing and bucket < 4:
        return Reply.text(f"I accept this placement for {job_id}.")
    reason = "The nodes have the capacity and the pool suits this kind of job." if feasible else \
        "The feasibility check failed, so I cannot accept."
    return Reply.json({"job_id": job_id, "accept": feasible, "confidence": 0.9 if feasible else 0.99,
                       "reasoning": reason})


def record(scenario: str, provider: str, cassettes_dir: Path) -> dict[str, object]:
    env = {"ollama": lambda url: {"OLLAMA_HOST": url},
           "sambanova": lambda url: {"SAMBANOVA_API_KEY": "recording-placeholder-key", "SAMBANOVA_API_BASE": f"{url}/v1"}}
    with StandIn() as server, tempfile.TemporaryDirectory() as runs:
        server.default = Reply.dynamic(answer)
        overrides = env[provider](server.url) | {"LLM_SCHED_PROVIDER": provider,
                                                 "LLM_SCHED_SCENARIOS_DIR": str(cassettes_dir.parent)}
        settings = load_settings(overrides, environ={})
        loaded = load_scenario(scenario, PROJECT_ROOT / "scenarios")
        result = run_scenario(loaded, settings, record=True, recorded_how=HOW, runs_dir=Path(runs))
        return result.summary


def main(argv: list[str]) -> int:
    scenarios = argv or available_scenarios(PROJECT_ROOT / "scenarios")
    cassettes = PROJECT_ROOT / "scenarios" / "cassettes"
    for scenario in scenarios:
        for provider in PROVIDERS:
            summary = record(scenario, provider, cassettes)
            print(json.dumps({"scenario": scenario, "provider": provider, "llm_calls": summary["llm_calls"],
                              "outcomes": summary["llm_outcomes"], "committed": summary["committed"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
