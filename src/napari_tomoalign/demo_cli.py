"""``tomoalign demo``: simulated tilt series with known truth, aligned and reconstructed.

Without ``--size``: the 512 x 512 x 61 sample napari's File > Open Sample shows, with clicked markers (one of
them a mis-click), aligned, then its aligned stack and tomogram (a few seconds). With ``--size N``: a
camera-sized int16 series (`simulation.camera_demo`: 4096 at 0.2 nm/px with 10 nm gold by default at 4096),
on which ``tomoalign run`` is run as a user would run it, then judged against the truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    from .cli import add_solver_options, common_options

    p.add_argument("--output", required=True, metavar="DIR", help="directory for the inputs and outputs")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed, 0 or more (default 0: the series napari's File > Open Sample shows)")
    g = p.add_argument_group("a camera-sized series (tracked from its raw views by 'tomoalign run')")
    g.add_argument("--size", type=int, metavar="N",
                   help="N x N pixels, 256 to 8192 (4096: a K2/K3/Falcon frame; minutes and about 2 GB at 4096 x 41)")
    g.add_argument("--views", type=int, default=41, metavar="N", help="views from -60 to 60 degrees (default 41)")
    g.add_argument("--pixel-nm", type=float, metavar="NM",
                   help="pixel size (default 0.8 nm over the upsampling, 0.2 at 4096 and 0.4 at 2048)")
    g.add_argument("--bead-nm", type=float, default=10.0, metavar="D", help="gold diameter (default 10 nm)")
    common_options(p, "existing files")
    add_solver_options(p)


def cmd_demo(args: argparse.Namespace) -> int:
    """The sample (module docstring), or with ``--size`` the camera-sized series run through ``tomoalign run``."""
    if args.size is not None:
        return _camera_demo(args)
    if args.pixel_nm is not None or args.views != 41 or args.bead_nm != 10.0:
        from .errors import UsageError

        raise UsageError("--views, --pixel-nm and --bead-nm shape the camera-sized series: give --size N too")
    return _sample_demo(args)


def _sample_demo(args: argparse.Namespace) -> int:
    """Make the sample tilt series (images and clicked markers), align it, and write every product."""
    import sys

    from .cli import print_alignment, print_image, solver_settings_of
    from .file_jobs import align_to_folder, aligned_stack_to_file, demo_truth_line, reconstruct_to_file, write_demo_inputs
    from .io.alignment import output_names

    out, settings = Path(args.output), solver_settings_of(args)
    ali, rec = out / "sample.ali", out / "sample_bin2.rec"
    demo = write_demo_inputs(out, args.seed, overwrite=args.force,
                             products=(ali.name, rec.name, *output_names("sample")))
    if not args.quiet:
        print(f"simulated a {len(demo.tilt_angles_deg)}-view tilt series with {demo.n_beads} beads "
              f"({len(demo.table)} clicks, one of them a mis-click); inputs in {out}")
    res = align_to_folder("sample.csv", demo.tilt_angles, out, settings, image_size=demo.table.image_size,
                          pixel_size_nm=args.pixel_size_nm or demo.pixel_size_nm,
                          leave_out=args.leave_out, overwrite=args.force, markers=demo.table,
                          tilt_angles_deg=demo.tilt_angles_deg,
                          inputs={"stack": str(demo.stack), "markers": str(demo.markers),
                                  "tilt_angles": str(demo.tilt_angles), "simulated_seed": args.seed})
    if not args.quiet:
        print_alignment(res, out)
        print(demo_truth_line(demo, out))
    if not res.alignment.converged:
        print("tomoalign: error: the demo's alignment did not converge; no stack or tomogram made", file=sys.stderr)
        return 3
    r = aligned_stack_to_file(demo.stack, out, ali, overwrite=args.force)
    if not args.quiet:
        print_image(r, tomogram=False)
    r = reconstruct_to_file(demo.stack, out, rec, binning=2, thickness=160, lowpass=0.35, overwrite=args.force)
    if not args.quiet:
        print_image(r, tomogram=True)
    return 0


def _camera_demo(args: argparse.Namespace) -> int:
    """Render the camera-sized series, run ``tomoalign run`` on it into ``DIR/run``, and judge it."""
    import time

    from .cli import build_parser
    from .file_jobs import check_job_numbers
    from .io.imod_set import RUN_ALIGNMENT
    from .simulation.camera_demo import check_room, plan, truth_line, write_series

    check_job_numbers(seed=args.seed)
    series = plan(args.size, args.views, args.pixel_nm, args.bead_nm)
    out = Path(args.output)
    check_room(series, out)
    if not args.quiet:
        seconds = 0.25e-6 * series.size**2 * series.n_views * series.factor**0.5  # 6 s at 1024 x 41, 395 at 4096 busy
        print(f"simulating {series.size} x {series.size} x {series.n_views} int16 (cryo-like, {series.pixel_nm:g}"
              f" nm/px, {series.bead_nm:g} nm gold = {series.bead_px:.1f} px), about {seconds:.0f} s on one core...",
              flush=True)
    t0 = time.perf_counter()
    stack = write_series(series, out, args.seed, overwrite=args.force)
    run_dir = out / "run"
    argv = ["run", str(stack), "--bead-diameter-nm", f"{series.bead_nm:g}", "--output", str(run_dir)]
    argv += ["--force"] * args.force + ["--quiet"] * args.quiet
    if not args.quiet:
        print(f"wrote {stack} ({time.perf_counter() - t0:.0f} s) with {stack.with_suffix('.rawtlt').name} and the truth"
              f" ({stack.name}.truth.npz); now, as you would:\n  tomoalign {' '.join(argv)}", flush=True)
    run_args = build_parser(argv).parse_args(argv)
    rc = run_args.func(run_args)
    if rc == 0 and not args.quiet:
        print(truth_line(stack, run_dir / RUN_ALIGNMENT))
    return rc
