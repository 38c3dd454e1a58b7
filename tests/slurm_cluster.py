"""A local Slurm cluster for tests, started the way a user starts one (``scripts/slurm-local``)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm-local"
needs_slurm = pytest.mark.skipif(shutil.which("slurmctld") is None or shutil.which("slurmd") is None,
                                 reason="Slurm is not installed (make test installs slurm-wlm with apt-get as root)")


@contextmanager
def four_nodes(folder: Path) -> Iterator[Path]:
    """Three GPU nodes and one large-memory node of scenarios/clusters/specialists.yaml; yields slurm.conf."""
    up = subprocess.run([str(SCRIPT), "up", "4", "--pools", "gpu-pool=3,mem-pool=1", "--dir", str(folder)],
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield folder / "slurm.conf"
    finally:
        subprocess.run([str(SCRIPT), "down", "--dir", str(folder)], capture_output=True, timeout=60)
