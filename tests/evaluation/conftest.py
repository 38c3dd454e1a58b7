"""Fixtures for the campaign tests: a tiny campaign (2 configurations, 2 repetitions), run once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm_sched.evaluation.campaign import CampaignResult, run_campaign
from llm_sched.evaluation.config import CampaignConfig, parse_campaign

TINY: dict[str, Any] = {
    "name": "tiny",
    "description": "two failure rates on a small machine",
    "repetitions": 2,
    "seed": 3,
    "base": {"jobs": 30, "agents": 5, "nodes_per_agent": 4, "failure_rate": 0.3},
    "dimensions": {"failure_rate": [0.05, 0.6]},
}


def tiny_config(**changes: Any) -> CampaignConfig:
    """The tiny campaign, with top-level fields changed."""
    return parse_campaign({**TINY, **changes}, "tiny")


def run_tiny(folder: Path, workers: int = 1, **changes: Any) -> CampaignResult:
    """Run the tiny campaign into ``folder``."""
    return run_campaign(tiny_config(**changes), folder, workers=workers, command="pytest tiny campaign")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> CampaignResult:
    """The tiny campaign on one worker, run once for the tests that only read its files."""
    return run_tiny(tmp_path_factory.mktemp("tiny") / "out")
