from pathlib import Path

import pytest
from support.paths import DATA


@pytest.fixture(scope="session")
def imod_data() -> Path:
    """IMOD's tutorial markers and solutions, kept in the repository (see tests/data/SOURCE.md)."""
    return DATA
