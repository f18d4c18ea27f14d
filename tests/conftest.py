from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imod-tutorial-BB"


@pytest.fixture(scope="session")
def imod_data() -> Path:
    assert DATA.is_dir(), f"IMOD tutorial data expected at {DATA} (../shared beside the project)"
    return DATA
