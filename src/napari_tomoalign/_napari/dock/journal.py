"""Marker edits that survive a crash: every edit of the markers layer is appended to a journal at once.

The journal of a tilt series lives in the user's cache (`journal_dir`; ``TOMOALIGN_JOURNAL_DIR`` points it
elsewhere), one file per stack, named after the stack and a hash of its path. Each record is the whole state
of the markers after an edit (points, marker ids, tracking's check marks, excluded markers): about 32 bytes a
point, appended and flushed in well under a millisecond, so a killed process loses nothing it had shown.
A record cut short by the kill is ignored when the journal is read. *Save markers* marks the journal saved;
re-opening the same stack with a journal whose last state was not saved offers it back, with the states
before it as the undo history. GUI-free: it listens to the layer's public ``events.data``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

ENV = "TOMOALIGN_JOURNAL_DIR"
HISTORY = 50  # states kept as undo history on restore (the undo stack's depth)
COMPACT_AFTER = 400  # records; then the journal is rewritten with its last `HISTORY` states
_HEAD = struct.Struct("<4sII")  # magic, header length, payload length
_MAGIC = b"TAJ1"


def journal_dir() -> Path:
    """Where journals live: ``$TOMOALIGN_JOURNAL_DIR``, else the platform's user cache (as platformdirs puts it)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "napari-tomoalign" / "Cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "napari-tomoalign"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "napari-tomoalign"
    return base / "journal"


def stack_key(image: Any, markers: Any = None) -> str | None:
    """What identifies the stack across sessions: its file's absolute path with its size and time (the next
    series saved under the same name, as SerialEM's TS_01.st in a reused folder, is another stack: new user's
    finding S, session 12), else its layer's name (a sample); the markers layer's file or name when there is no
    stack; None when there is nothing to key on."""
    for layer in (image, markers):
        if layer is None:
            continue
        path = getattr(getattr(layer, "source", None), "path", None)
        if not path:
            return f"layer:{layer.name}"
        p = Path(str(path)).resolve()
        try:
            st = p.stat()
        except OSError:
            return str(p)
        return f"{p}|{st.st_size}|{st.st_mtime_ns}"
    return None


def journal_path(key: str, folder: Path | None = None) -> Path:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(key.removeprefix("layer:").split("|")[0]).name)[:40]
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return (folder or journal_dir()) / f"{stem}-{digest}.journal"


@dataclass
class State:
    """The markers after one edit."""

    data: NDArray[np.float64]  # (n, 3) view, y, x in the stack's pixels
    marker: NDArray[np.int64]
    check: NDArray[np.bool_] | None
    excluded: set[int]
    layer: str
    time: float
    saved: bool = False
    key: str = ""
    edited: bool = True  # made by an edit of the layer; False: the layer as it was taken in (tracked, opened)
    source: str = ""  # the layer's metadata "source" ("tracked on cell.st"), if any

    def same_points(self, other: State) -> bool:
        return (np.array_equal(self.data, other.data) and np.array_equal(self.marker, other.marker)
                and self.excluded == other.excluded)

    def same_markers(self, other: State, tol_px: float = 1e-3) -> bool:
        """The same marker points in any order, to ``tol_px`` (a saved ``.fid`` opened again: IMOD's model keeps
        float32 coordinates, marker by marker; new user s13 was offered back the markers of the file just opened)."""
        if len(self.data) != len(other.data) or self.excluded != other.excluded:
            return False
        a = np.lexsort((self.data[:, 0], self.marker))
        b = np.lexsort((other.data[:, 0], other.marker))
        return bool(np.array_equal(self.marker[a], other.marker[b])
                    and np.allclose(self.data[a], other.data[b], rtol=0.0, atol=tol_px))


def state_of(layer: Any, excluded: set[int], saved: bool = False, edited: bool = True) -> State:
    features = layer.features
    check = features["check"].to_numpy(dtype=bool) if "check" in features.columns else None
    source = str((getattr(layer, "metadata", None) or {}).get("source") or "")
    return State(np.array(layer.data, dtype=np.float64).reshape(-1, 3), features["marker"].to_numpy(dtype=np.int64),
                 check, set(int(m) for m in excluded), str(layer.name), time.time(), saved, edited=edited,
                 source=source)


def encode(state: State) -> bytes:
    head = json.dumps({"n": len(state.data), "excluded": sorted(state.excluded), "layer": state.layer,
                       "time": state.time, "saved": state.saved, "check": state.check is not None,
                       "key": state.key, "edited": state.edited, "source": state.source}).encode()
    body = state.data.astype("<f8").tobytes() + state.marker.astype("<i8").tobytes()
    if state.check is not None:
        body += state.check.astype(np.uint8).tobytes()
    return _HEAD.pack(_MAGIC, len(head), len(body)) + head + body


def read_journal(path: Path) -> list[State]:
    """Every whole record of a journal, oldest first (a record cut short by a crash ends the list)."""
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return []
    states, at = [], 0
    while at + _HEAD.size <= len(raw):
        magic, nh, nb = _HEAD.unpack_from(raw, at)
        start, end = at + _HEAD.size, at + _HEAD.size + nh + nb
        if magic != _MAGIC or end > len(raw):
            break
        try:
            head = json.loads(raw[start : start + nh])
            n, body = int(head["n"]), raw[start + nh : end]
            data = np.frombuffer(body[: 24 * n], "<f8").reshape(n, 3).astype(np.float64)
            marker = np.frombuffer(body[24 * n : 32 * n], "<i8").astype(np.int64)
            check = np.frombuffer(body[32 * n : 33 * n], np.uint8).astype(bool) if head["check"] else None
        except (ValueError, KeyError, TypeError):
            break
        states.append(State(data, marker, check, set(head["excluded"]), head["layer"], float(head["time"]),
                            bool(head["saved"]), str(head.get("key", "")), bool(head.get("edited", True)),
                            str(head.get("source", ""))))
        at = end
    return states


@dataclass
class Journal:
    """Journals one markers layer under one stack's key; ``excluded`` gives the markers left out of the fit."""

    folder: Path | None = None
    layer: Any = None
    key: str | None = None
    excluded: Callable[[], set[int]] = field(default=lambda: set())
    records: int = 0
    _last: State | None = None

    @property
    def path(self) -> Path | None:
        return journal_path(self.key, self.folder) if self.key else None

    def watch(self, layer: Any, key: str | None, excluded: Callable[[], set[int]] | None = None,
              record_now: bool = True) -> None:
        """Journal ``layer`` under ``key`` from now on; with ``record_now`` its present state first (if it differs
        from the journal's last), else from its first edit (a journal whose last state is offered back stays
        as it is until the user edits)."""
        if layer is self.layer and key == self.key:
            return
        self.unwatch()
        if layer is None or key is None:
            return
        self.layer, self.key = layer, key
        self.excluded = excluded or (lambda: set())
        states = read_journal(self.path) if self.path else []
        self._last, self.records = (states[-1] if states else None), len(states)
        layer.events.data.connect(self._on_data)
        if record_now:
            self.record(edited=False)

    def unwatch(self) -> None:
        if self.layer is not None:
            try:
                self.layer.events.data.disconnect(self._on_data)
            except (TypeError, ValueError, RuntimeError):
                pass
        self.layer, self.key, self._last = None, None, None

    def _on_data(self, event: Any = None) -> None:
        if not str(getattr(event, "action", "")).endswith("ing"):  # after the add, move or delete, not before
            self.record()

    def record(self, saved: bool = False, edited: bool = True) -> bool:
        """Append the layer's state if it changed (or to mark it saved; ``edited`` False: as it was taken in, not
        an edit); return whether anything was written."""
        layer, path = self.layer, self.path
        if layer is None or path is None or len(layer.data) != len(layer.features):
            return False
        state = state_of(layer, self.excluded(), saved, edited)
        state.key = self.key or ""
        last = self._last
        if last is not None and last.same_points(state) and last.layer == state.layer and last.saved == saved:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(encode(state))
            f.flush()
        self._last, self.records = state, self.records + 1
        if self.records > COMPACT_AFTER:
            self.compact()
        return True

    def compact(self) -> None:
        """Keep the last `HISTORY` states (written atomically)."""
        from ...io.atomic import atomic_open

        path = self.path
        if path is None:
            return
        states = read_journal(path)[-HISTORY:]
        with atomic_open(path, "wb", overwrite=True) as f:
            for s in states:
                f.write(encode(s))
        self.records = len(states)


def pending(key: str | None, current: State | None = None, folder: Path | None = None) -> list[State]:
    """The journal's states up to its last one when that one was not saved and differs from ``current`` (the
    markers as they are now, if any): what re-opening the stack offers back. Empty when there is nothing to offer."""
    if key is None:
        return []
    states = read_journal(journal_path(key, folder))
    if not states or states[-1].saved or len(states[-1].data) == 0 or (
            current is not None and states[-1].same_markers(current)):  # nothing to give back: no points
        return []
    return states[-(HISTORY + 1):]
