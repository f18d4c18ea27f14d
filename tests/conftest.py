from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "imod-tutorial-BB"


@pytest.fixture(scope="session")
def imod_data() -> Path:
    """IMOD's tutorial markers and solutions, kept in the repository (see tests/data/SOURCE.md)."""
    return DATA
