import subprocess
import sys

from gui_modules import GUI_MODULES

CORE = ["napari_tomoalign", "napari_tomoalign.model", "napari_tomoalign.lm", "napari_tomoalign.solver",
        "napari_tomoalign.simulate", "napari_tomoalign.transforms", "napari_tomoalign.io",
        "napari_tomoalign.io.alignment", "napari_tomoalign.io.imod", "napari_tomoalign.cli"]


def test_core_imports_no_gui_toolkit():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({GUI_MODULES!r}))\n"
        "print(bad)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
