"""The bead settings a reopened dock starts from: the diameter and polarity last set for each stack, and the last
set on any (session 14's new user: a reopened dock started at its 10 nm default whatever the series).

Kept in a small JSON file in the user's config folder (``TOMOALIGN_SETTINGS_DIR`` points it elsewhere; with only
``TOMOALIGN_JOURNAL_DIR`` set, as the tests set it, beside the journals), keyed as the journal keys a stack
(`journal.stack_key`: its path, size and time, so the next series saved under the same name is another stack).
A value is never taken silently: the step says where the values shown came from (this stack's, another stack's,
the default), and a value the user sets says nothing more. GUI-free: it listens to the widgets' ``changed``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .journal import ENV as JOURNAL_ENV
from .journal import stack_key

ENV = "TOMOALIGN_SETTINGS_DIR"
FILE = "bead-settings.json"
KEPT = 200  # stacks remembered; the oldest are forgotten first


def settings_path() -> Path:
    """``$TOMOALIGN_SETTINGS_DIR``, else ``$TOMOALIGN_JOURNAL_DIR``, else the platform's user config folder."""
    for env in (ENV, JOURNAL_ENV):
        if os.environ.get(env):
            return Path(os.environ[env]) / FILE
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "napari-tomoalign" / FILE


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: start afresh (the defaults are said as such)
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("stacks", {}), dict) else {}


def remember(key: str, name: str, values: dict[str, Any], path: Path | None = None) -> None:
    """Keep ``values`` as the stack ``key``'s (named ``name``) and as the last set; written atomically. A file that
    cannot be written loses only the memory (the dock works on), never the user's work."""
    path = path or settings_path()
    data = _load(path)
    entry = {**values, "stack": name, "when": time.strftime("%Y-%m-%d %H:%M")}
    stacks = {k: v for k, v in data.get("stacks", {}).items() if k != key}
    stacks[key] = entry
    data = {"stacks": dict(list(stacks.items())[-KEPT:]), "last": {**entry, "key": key}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass


def recall(key: str, path: Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """The values last set for the stack ``key``, else the last set on any, and a line saying whence (None, "")."""
    data = _load(path or settings_path())
    own = data.get("stacks", {}).get(key)
    if isinstance(own, dict):
        return own, f"as last set for this stack ({own.get('when', '?')})"
    last = data.get("last")
    if not isinstance(last, dict):
        return None, ""
    there = str(last.get("key", "")).split("|")[0]
    if there == key.split("|")[0]:  # the same file, rewritten since (its size or time differ)
        return last, f"as last set for this file before it changed ({last.get('when', '?')}): check them"
    name = str(last.get("stack", "another stack"))
    if name == Path(key.split("|")[0]).name and Path(there).is_absolute():  # two series of one name: say which
        name = f"{name} in {Path(there).parent}"
    return last, f"as last set, for {name} (another stack): check them for this one"


class BeadMemory:
    """Recalls the diameter and polarity widgets' values for a stack, keeps what the user or a measure sets, and
    says where the values shown came from (`said`)."""

    def __init__(self, diameter: Any, polarity: Any, said: Callable[[], Any] = lambda: None,
                 path: Path | None = None) -> None:
        self._diameter, self._polarity, self._path, self._said = diameter, polarity, path, said
        self._key: str | None = None
        self._name = ""
        self._recalling = False
        self.source = "the default diameter and polarity: set your gold's"
        diameter.changed.connect(self._changed)
        polarity.changed.connect(self._changed)

    def values(self) -> dict[str, Any]:
        return {"diameter_nm": float(self._diameter.value), "polarity": str(self._polarity.value)}

    def recall(self, image: Any) -> None:
        """A new tilt series: its own values, else the last set on another (said so), else the defaults."""
        self._key, self._name = stack_key(image), str(getattr(image, "name", ""))
        found, source = recall(self._key, self._path) if self._key else (None, "")
        if found is None:
            return
        d, pol = found.get("diameter_nm"), found.get("polarity")
        self._recalling = True
        try:
            if isinstance(d, (int, float)) and self._diameter.min <= d <= self._diameter.max:
                self._diameter.value = float(d)
            if pol in self._polarity.choices:
                self._polarity.value = pol
        finally:
            self._recalling = False
        self.source = f"{self._diameter.value:g} nm, {self._polarity.value} beads {source}"

    def _changed(self, *_: Any) -> None:
        if not self._recalling:
            self.keep()

    def keep(self, image: Any = None) -> None:
        """The values are the user's now (set, measured, or used by a Find or a Track on ``image``): kept as this
        stack's, and nothing more said of them (a measure is said in the status)."""
        if image is not None and self._key is None:
            self._key, self._name = stack_key(image), str(getattr(image, "name", ""))
        self.source = ""
        if self._key is not None:
            remember(self._key, self._name, self.values(), self._path)
        self._said()

    def said(self) -> str:
        """The line under the step's numbers: where the diameter and polarity came from ("" once set here)."""
        return f"\n{self.source}" if self.source else ""
