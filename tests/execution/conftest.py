from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.faults import Place, isolated_place


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    """An isolated working folder with its runs folder (see :class:`tests.store.faults.Place`)."""
    return isolated_place(tmp_path, monkeypatch)
