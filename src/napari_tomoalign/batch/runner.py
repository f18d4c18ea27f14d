"""`run_batch`: every series of a batch as one dask.distributed task, then the summary."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..io.convert import normalise_format
from ..stops import StopRequested, signals_held
from .series import SeriesSpec, discover
from .stamp import discard_unfinished_series, restore_kept_runs
from .summary import flag_outliers, write_summary_csv, write_summary_png
from .task import error_text, is_finished, make_row, process_series, row_from_json


@dataclass
class BatchResult:
    """What a batch did: one row per series (as in ``summary.csv``), the summary files and the wall time."""

    rows: list[dict[str, Any]]
    summary_csv: Path
    summary_png: Path | None
    wall_time_s: float
    dashboard: str | None = None
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] in ("failed", "no-markers")]


def machine_workers() -> int:
    """Workers for a local cluster: the cores this process may use (one single-threaded worker per core)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _probe_scheduler(address: str, wait_s: float) -> None:
    """A dask scheduler sends its handshake as soon as it accepts a connection; dask's own Client waits for it with
    no time-out. So a TCP address that refuses, or accepts and says nothing for ``wait_s``, is a one-line error."""
    import socket

    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if address.split("://")[0] not in ("tcp", address) or not port.isdigit():
        return  # another protocol (tls://, ucx://): dask's own checks
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=wait_s) as sock:
            sock.settimeout(wait_s)
            if not sock.recv(1):
                raise UsageError(f"the scheduler at {address} closed the connection; check --scheduler")
    except TimeoutError:
        raise UsageError(f"the scheduler at {address} did not answer in {wait_s:g} s (not a dask scheduler, or stuck); "
                         "check --scheduler") from None
    except OSError as exc:
        raise UsageError(f"cannot reach the scheduler at {address}: {exc.strerror or exc}; check --scheduler") from None


def _client(scheduler: str | None, n_workers: int | None, processes: bool, timeout_s: float):
    """A client of the given scheduler, or of a new LocalCluster on 127.0.0.1 (closed by the caller)."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        _probe_scheduler(scheduler, min(timeout_s, 10.0))
        return Client(scheduler, timeout=timeout_s), None
    import dask

    net = {"host": "127.0.0.1"} if processes else {}  # threads talk in-process: no network at all
    # dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive mmap
    # threshold: every large temporary array is then mapped and unmapped afresh, and tracking a 512^2 x 41 stack
    # took 1.8 s instead of 1.1 s. A worker here holds one series at a time, so the default allocator it is (a
    # value the user exported still reaches the workers).
    # silence_logs=CRITICAL: a series' failure reaches its summary row; a worker's own log lines (a heartbeat lost
    # while a stopped batch closes the cluster) would break the one-line contract on stderr.
    # allowed-failures 1: a series whose worker died is run once more (the OOM killer may have picked it for
    # another process's sake), then reported; dask's 3 would rerun a series that outgrows its worker three times,
    # each repeating the whole tracking before dying the same way.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.scheduler.allowed-failures": 1}), _workers_ignore_sigint():
        cluster = LocalCluster(n_workers=n_workers or machine_workers(), threads_per_worker=1, processes=processes,
                               dashboard_address="127.0.0.1:0" if _has_bokeh() else None, silence_logs=50, **net)
    return Client(cluster, timeout=timeout_s), cluster


@contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Ctrl-C in a terminal reaches the whole process group: the worker processes started meanwhile ignore it (a
    process started with SIGINT ignored keeps it so; Python then installs no KeyboardInterrupt), so that only this
    process answers it, in one line, and stops the cluster, instead of every worker printing a traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _progress(futures: list, show: bool):
    """Yield futures as they finish, with a terminal progress bar when ``show`` (tqdm, else dask's own)."""
    from dask.distributed import as_completed

    if not show:
        yield from as_completed(futures)
        return
    try:
        from tqdm import tqdm
    except ImportError:
        from dask.distributed import progress

        progress(futures)  # dask's text bar; returns when all are done
        yield from futures
        return
    with tqdm(total=len(futures), unit="series", file=sys.stderr, dynamic_ncols=True) as bar:
        for f in as_completed(futures):
            bar.update(1)
            yield f


def _submit_all(client, todo: list[SeriesSpec], out: Path, defaults: dict, export: tuple[str, ...],
                show: bool, force: bool, rows: dict[str, dict]) -> None:
    """Run the series on the cluster, filling ``rows`` as they land; a task that raised (a dead worker) becomes a
    failed row."""
    futures = [client.submit(process_series, s, str(out), defaults, export, force,
                             key=f"tomoalign-{s.name}-{time.time_ns()}", pure=False) for s in todo]
    specs = {f.key: s for f, s in zip(futures, todo)}
    for f in _progress(futures, show):
        name = specs[f.key].name
        try:
            rows[name] = f.result()
        except Exception as exc:  # noqa: BLE001 - a lost worker or a task killed: reported, the batch goes on
            rows[name] = make_row(name, "failed", output=str(out / name), error=error_text(exc))
            discard_unfinished_series(out, [specs[f.key]])  # its worker died mid-series: nothing half-written stays
        f.release()


def run_batch(
    source: str | os.PathLike[str] | list,
    output: str | os.PathLike[str],
    *,
    options: dict[str, Any] | None = None,
    scheduler: str | None = None,
    client: Any = None,
    n_workers: int | None = None,
    processes: bool = True,
    force: bool = False,
    progress: bool | None = None,
    export: tuple[str, ...] = (),
    plot: bool = True,
    timeout_s: float = 30.0,
    log: Callable[[str], None] | None = None,
) -> BatchResult:
    """Align every series of ``source`` into ``output/NAME/``; write ``output/summary.csv`` and ``summary.png``.

    A series with markers is aligned (the files of ``tomoalign align``); one without markers but with a stack
    and a bead diameter (its own, or ``options["bead_diameter_nm"]`` / ``["bead_diameter_px"]``) is tracked,
    aligned robustly, warped and reconstructed (the files of ``tomoalign run``, `batch.run_series`); one with
    neither is reported as ``no-markers``.

    Parameters
    ----------
    source
        A folder, a glob pattern (quote it in a shell), a CSV table, or a list of files or `SeriesSpec`
        (see `batch.series`).
    output
        Folder for the series' outputs (one sub-folder each) and the summary.
    options
        Defaults for every series, by the table's column names (``tilt_axis``, ``rotation``, ``robust``, ...,
        ``pixel_size_nm``, ``bead_diameter_nm``, ``bead_diameter_px``, ``beads``, ``bin``, ``thickness``,
        ``erase_gold``); a table's per-series cells win.
    scheduler, client, n_workers, processes
        ``scheduler``: the address of a running dask scheduler (``tcp://host:8786``). ``client``: a
        ``dask.distributed.Client`` to use as it is. Otherwise a ``LocalCluster`` on 127.0.0.1 with
        ``n_workers`` single-threaded workers (default: one per core), processes unless ``processes=False``.
    force
        Redo series whose run stamp is finished and current (skipped otherwise), and replace outputs no batch run
        stamped (refused otherwise). A series whose inputs or options changed is redone without it (`batch.stamp`).
    progress
        A progress bar on stderr (default: when stderr is a terminal).
    export
        Also write each series in these formats (``aretomo``, ``cdp``, ``relion``; `batch.task.EXPORT_TARGETS`);
        with ``relion``, ``output/tomograms.star`` lists every series for RELION 5.
    plot
        Write ``summary.png`` (needs matplotlib; skipped with a note without it).
    log
        Called with one-line notes (the dashboard address, a skipped plot); default: nothing.
    """
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    specs = discover(source)
    out = Path(output)
    made = next((q for q in reversed([out, *out.parents]) if not q.exists()), None)  # the top folder made
    out.mkdir(parents=True, exist_ok=True)
    export = tuple(normalise_format(f) for f in export)
    defaults = dict(options or {})
    restore_kept_runs(out, specs)
    done = {s.name for s in specs if not force and is_finished(s, out, export, defaults)}
    todo = [s for s in specs if s.name not in done]
    rows = {s.name: row_from_json(s, out, "skipped", defaults) for s in specs if s.name in done}
    notes: list[str] = []
    dashboard = None
    if todo:
        show = sys.stderr.isatty() if progress is None else progress
        environ = dict(os.environ)
        try:
            own, cluster = (client, None) if client is not None else _client(scheduler, n_workers, processes,
                                                                            timeout_s)
        except BaseException:  # no scheduler to talk to: the folder this batch made goes again
            _remove_if_empty(out, made)
            raise
        try:
            dashboard = _announce(own, scheduler, say)
            _submit_all(own, todo, out, defaults, export, show, force, rows)
        except BaseException as exc:
            with signals_held():  # a second Ctrl-C waits for the series to be put back
                _close_after_stop(own, cluster, client, environ)
                if cluster is not None and processes:  # stopped (a signal): our workers are gone, their series undone
                    discard_unfinished_series(out, [s for s in todo if s.name not in rows])
                    _remove_if_empty(out, made)
            landed = [s.name for s in todo if s.name in rows and rows[s.name]["status"] != "failed"]
            if landed and isinstance(exc, (KeyboardInterrupt, StopRequested)):  # said on the stop's one line
                setattr(exc, "landed", f"{len(landed)} series had finished and keep their new files"  # noqa: B010
                        f" ({', '.join(landed[:8])}{', ...' if len(landed) > 8 else ''}); summary.csv was not written")
            raise
        _close(own, cluster, client, environ)
    ordered = [rows[s.name] for s in specs]
    if "relion" in export:
        _session_star(ordered, out, notes)
    else:
        _retire_stale_star(out, notes, say)
    csv_path = write_summary_csv(ordered, out / "summary.csv")
    png = write_summary_png(ordered, out / "summary.png") if plot else None
    if plot and png is None:
        notes.append("summary.png not written: matplotlib is not installed (pip install matplotlib)")
        say(notes[-1])
    return BatchResult(ordered, csv_path, png, time.perf_counter() - t0, dashboard, notes)


def _remove_if_empty(out: Path, made: Path | None) -> None:
    """Remove the output folder (and the parents) this batch made, if nothing landed in them."""
    for q in [out, *out.parents] if made is not None else []:
        if not q.is_dir() or any(q.iterdir()):
            return
        q.rmdir()
        if q == made:
            return


def _close(own: Any, cluster: Any, client: Any, environ: dict[str, str]) -> None:
    """Close the client and the local cluster this batch made (its worker processes end with it)."""
    if client is None:
        own.close()
        if cluster is not None:
            cluster.close()
            _restore_environ(environ)


def _close_after_stop(own: Any, cluster: Any, client: Any, environ: dict[str, str], wait_s: float = 10.0) -> None:
    """After a signal: close as `_close` does, but each step within ``wait_s`` (a loaded machine once made the
    client's close time out after 60 s and replace the interruption by that error), then kill whatever worker
    process of this batch's cluster is still alive, so that no worker writes into a series being put back."""
    pids = [w.pid for w in getattr(cluster, "workers", {}).values() if getattr(w, "pid", None)]
    steps = [] if client is not None else [lambda: own.close(timeout=wait_s)]
    if client is None and cluster is not None:
        steps.append(lambda: cluster.close(timeout=wait_s))
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - a close that did not finish in time: the processes are killed below
            pass
    if client is None and cluster is not None:
        _restore_environ(environ)
    _kill_all(pids)


def _kill_all(pids: list[int], wait_s: float = 5.0) -> None:
    """SIGKILL each process still running and wait (up to ``wait_s``) until none of them runs any more."""
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:  # already gone
            pass
    end = time.monotonic() + wait_s
    while any(_running(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.02)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # gone, or no /proc (macOS): SIGKILL was sent and cannot be caught
        return False
    return state not in ("Z", "X")


def _restore_environ(before: dict[str, str]) -> None:
    """Undo what a local cluster's nanny wrote into this process's environment for its workers (OMP_NUM_THREADS=1
    and the like), so that programs this process starts later run as they would have."""
    for k in set(os.environ) - set(before):
        del os.environ[k]
    for k, v in before.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


def _announce(client: Any, scheduler: str | None, say: Callable[[str], None]) -> str | None:
    """The dashboard's address (a local cluster has one only with bokeh installed), told through ``say``."""
    link = getattr(client, "dashboard_link", None) if _has_bokeh() or scheduler else None
    if link:
        say(f"dask dashboard: {link}")
    return link


def _session_star(rows: list[dict[str, Any]], out: Path, notes: list[str]) -> None:
    """``out/tomograms.star``: every aligned series' RELION tomogram in one table."""
    from ..io.relion import merge_tomogram_sets

    stars = [out / r["name"] / "relion" / "tomograms.star" for r in rows if r["status"] in ("done", "skipped")]
    stars = [p for p in stars if p.is_file()]
    if stars:
        merge_tomogram_sets(stars, out / "tomograms.star")
    else:
        notes.append("no series to list in tomograms.star")


def _retire_stale_star(out: Path, notes: list[str], say: Any) -> None:
    """An earlier batch's session ``tomograms.star`` that names tilt-series files this run took away (a run without
    ``--export relion`` removes each series' ``relion/``) is moved aside as ``tomograms.star~``, said in a note:
    RELION's import of it failed (new user's finding, session 13)."""
    import re

    star = out / "tomograms.star"
    if not star.is_file() or star.is_symlink() or star.stat().st_size > 64 << 20:
        return
    named = re.findall(r"(\S+/tilt_series/\S+\.star)", star.read_text(errors="replace"))
    gone = [n for n in named if not (out / n).is_file() and not Path(n).is_file()]
    if gone:
        os.replace(star, star.with_name(star.name + "~"))
        notes.append(f"{star} named tilt series that are gone ({gone[0]}{', ...' if len(gone) > 1 else ''}): moved"
                     " aside as tomograms.star~; --export relion writes a new one")
        say(notes[-1])


def outliers(result: BatchResult) -> list[str]:
    """Names of the series flagged in the summary (RMS far above the batch's, or failed)."""
    return [r["name"] for r, o in zip(result.rows, flag_outliers(result.rows)) if o]
