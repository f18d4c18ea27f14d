from pathlib import Path

import pytest
from support.paths import DATA


@pytest.fixture(scope="session")
def imod_data() -> Path:
    """IMOD's tutorial markers and solutions, kept in the repository (see tests/data/SOURCE.md)."""
    return DATA


@pytest.fixture(autouse=True)
def journals_in_tmp(tmp_path_factory, monkeypatch):
    """The dock journals marker edits in the user's cache: tests keep theirs apart, in a folder of their own."""
    monkeypatch.setenv("TOMOALIGN_JOURNAL_DIR", str(tmp_path_factory.mktemp("journals")))
