"""``tomoalign batch``: the arguments and the command, for the lead's ``cli.py`` to register.

    from .batch.cli import add_batch_arguments, cmd_batch
    p = sub.add_parser("batch", help="align many tilt series on a dask cluster")
    add_batch_arguments(p)
    p.set_defaults(func=cmd_batch)
"""

from __future__ import annotations

import argparse
import sys

from .series import OPTION_COLUMNS


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``tomoalign batch SOURCE --output DIR [...]``."""
    p.add_argument("source", help="a folder, a quoted glob ('data/*.mrc') or a CSV table of series")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for one sub-folder per series and the summary")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler (tcp://host:8786); default: a "
                   "local cluster on this machine")
    p.add_argument("--workers", type=int, metavar="N", help="local cluster workers (default: one per core)")
    p.add_argument("--force", action="store_true", help="re-align series whose outputs are already up to date")
    p.add_argument("--export", default="", metavar="FORMATS",
                   help="also write each series as aretomo, cdp and/or relion (comma-separated); relion adds a "
                        "session tomograms.star")
    p.add_argument("--no-plot", action="store_true", help="do not write summary.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    g = p.add_argument_group("defaults for every series (a table's cells win)")
    for name in OPTION_COLUMNS:
        flag = name in ("robust", "robust_tracks", "no_axis_estimate", "no_initial_stage")
        g.add_argument(f"--{name.replace('_', '-')}", dest=f"opt_{name}", action="store_true" if flag else "store",
                       default=None)
    g.add_argument("--pixel-size-nm", dest="opt_pixel_size_nm", type=float, default=None)


def cmd_batch(args: argparse.Namespace) -> int:
    """Run the batch; 0 when every series landed (aligned now or before), 1 when some failed (see summary.csv)."""
    from .runner import run_batch

    options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_") and v not in (None, False)}
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    res = run_batch(args.source, args.output, options=options, scheduler=args.scheduler, n_workers=args.workers,
                    force=args.force, progress=False if args.quiet else None, plot=not args.no_plot, log=log,
                    export=tuple(f for f in args.export.split(",") if f.strip()))
    if not args.quiet:
        counts = {s: res.count(s) for s in ("done", "skipped", "not-converged", "failed", "no-markers") if res.count(s)}
        print(f"{len(res.rows)} series in {res.wall_time_s:.1f} s: "
              + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; summary in {res.summary_csv}")
        for r in res.failed:
            print(f"  {r['name']}: {r['status']}: {r['error']}")
    return 1 if res.failed else 0
