import subprocess
import sys

from support.gui import GUI_MODULES

# Every module of the package outside the napari layer (``_napari``) must import without the GUI stack.
CODE = (
    "import importlib, pkgutil, sys\n"
    "import napari_tomoalign as pkg\n"
    "names = [m.name for m in pkgutil.walk_packages(pkg.__path__, 'napari_tomoalign.')"
    " if '._napari' not in m.name]\n"
    "for m in names: importlib.import_module(m)\n"
    f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({GUI_MODULES!r}))\n"
    "print(len(names), bad)"
)


def test_core_imports_no_gui_toolkit():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    count, bad = r.stdout.strip().split(" ", 1)
    assert int(count) >= 20, r.stdout
    assert bad == "[]"
