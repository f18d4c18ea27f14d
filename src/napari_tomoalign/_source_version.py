"""The version of a source tree (run with ``PYTHONPATH=src``, or installed editable): setuptools-scm writes
``_version.py`` only on install, where it goes stale with the next commit, and ``0+unknown`` in every
``alignment.json`` loses the provenance. So: the
fallback version of ``pyproject.toml`` and the commit git has checked out, read from the files (no git program,
no subprocess at import), as ``0.2.0+src.g1a2b3c4d5``; ``0+unknown`` when neither can be found."""

from __future__ import annotations

import re
from pathlib import Path


def _git_dir(start: Path) -> Path | None:
    for d in (start, *start.parents):
        dot = d / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():  # a worktree: "gitdir: PATH"
            m = re.match(r"gitdir:\s*(.+)", dot.read_text(encoding="utf-8", errors="replace").strip())
            return (d / m.group(1)).resolve() if m else None
    return None


def _commit(git: Path) -> str | None:
    head = (git / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    if re.fullmatch(r"[0-9a-f]{40}", head):
        return head
    m = re.fullmatch(r"ref:\s*(\S+)", head)
    if not m:
        return None
    common = git
    if (git / "commondir").is_file():
        common = (git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve()
    for base in (git, common):
        ref = base / m.group(1)
        if ref.is_file():
            return ref.read_text(encoding="utf-8", errors="replace").strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.endswith(" " + m.group(1)):
                return line.split()[0]
    return None


def in_checkout() -> bool:
    """Whether this package is imported from the ``src/`` folder of a git checkout (an editable install or
    ``PYTHONPATH=src``), where the ``_version.py`` written at install time goes stale with every commit."""
    here = Path(__file__).resolve().parent
    root = here.parent.parent
    try:
        return here.parent.name == "src" and (root / "pyproject.toml").is_file() and _git_dir(root) is not None
    except OSError:
        return False


def source_version() -> str:
    """``FALLBACK+src.gCOMMIT`` of the source tree this package is imported from (module docstring)."""
    here = Path(__file__).resolve().parent
    try:
        text = (here.parent.parent / "pyproject.toml").read_text(encoding="utf-8")
        m = re.search(r'^fallback_version\s*=\s*"([^"]+)"', text, re.M)
        base = m.group(1) if m else "0"
        git = _git_dir(here)
        sha = _commit(git) if git is not None else None
    except (OSError, UnicodeError):
        return "0+unknown"
    if sha and re.fullmatch(r"[0-9a-f]{40}", sha):
        return f"{base}+src.g{sha[:10]}"
    return f"{base}+src" if m else "0+unknown"
