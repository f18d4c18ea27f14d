"""Where the suite's data and the package's sources are, from any test folder."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS / "data" / "imod-tutorial-BB"
PACKAGE = TESTS.parent / "src" / "napari_tomoalign"
