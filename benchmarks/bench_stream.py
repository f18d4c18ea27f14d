"""``tomoalign reconstruct`` streamed in bounded memory, against the same job split in slabs by hand.

    python benchmarks/bench_stream.py                      # 4096 x 4096 x 61 int16, bin 1, 1000 thick, --memory 2G
    python benchmarks/bench_stream.py --size 2048 --thickness 500 --chunks 4
    python benchmarks/bench_stream.py --local                # the same with a 5 x 5 local file (reconstruct --local)

The input (int16, smooth random views, BBa-like transforms: -12.5 deg rotation, shifts, 1% magnification
changes) and an alignment folder are made under a temporary folder in /tmp (``--tmp``), never in the
repository; everything is deleted at the end. Needs about 2 GB for the input and ``size^2 x thickness x 2``
bytes for the int16 tomogram (34 GB at the default size), once at a time.

1. **Streamed**: the whole ``tomoalign reconstruct`` process (``--memory``), its wall time and peak resident
   memory (``ru_maxrss`` of the child).
2. **By hand**: ``--chunks`` processes, each reconstructing its band of rows (IMOD's way: ``tilt`` with a
   SLICE range per chunk, as ``splittilt``/``processchunks`` do), each writing its own file, then the
   chunks assembled into one volume (``assemblevol``'s job), each chunk deleted once copied. The same
   ``--memory`` per chunk.

With ``--local``, instead: the same ``tomoalign reconstruct`` with ``--local`` (a 5 x 5 local file of small
patch rotations, shifts and tilt increments, written beside the input), its wall time and peak resident memory
(before session 19 the local WBP was made whole in memory: 67 GB at the default size, refused), then the global one
for the ratio of the two whole processes.

The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
from scipy import ndimage

from napari_tomoalign.io.alignment import SavedAlignment, write_transforms_folder
from napari_tomoalign.io.mrc import MrcStreamWriter

CLI = "import sys; from napari_tomoalign.cli import main; sys.exit(main(sys.argv[1:]))"
CHUNK = """
import sys
import numpy as np
from napari_tomoalign.io.alignment import read_alignment_dir
from napari_tomoalign.reconstruction.stream import RawStack, WarpedRows, reconstruct_streamed
raw, al, out, thick, mem, y0, y1 = sys.argv[1:]
s = read_alignment_dir(al)
views = np.flatnonzero(s.view_determined)
reconstruct_streamed(WarpedRows(RawStack(raw), s.transforms[views], views), s.tilt_angles_deg[views], out,
                     thickness=int(thick), memory_bytes=int(mem), output_dtype="int16", rows=(int(y0), int(y1)))
"""


def make_input(d: Path, size: int, n_views: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(size, size)).astype(np.float32), 3.0)
    base = (base / base.std() * 300 + 1000).astype(np.float32)
    raw = d / "raw.mrc"
    w = MrcStreamWriter(raw, (n_views, size, size), np.int16, 2.0)
    for j in range(n_views):
        w.write(np.roll(base, (3 * j, -2 * j), axis=(0, 1)).astype(np.int16))
    w.close()
    rot = np.radians(-12.5 + rng.normal(0, 0.2, n_views))
    mag = rng.normal(1.0, 0.01, n_views)
    xf = np.zeros((n_views, 2, 3))
    xf[:, 0, 0], xf[:, 0, 1] = np.cos(rot) / mag, -np.sin(rot) / mag
    xf[:, 1, 0], xf[:, 1, 1] = np.sin(rot) / mag, np.cos(rot) / mag
    xf[:, :, 2] = rng.normal(0, 20.0, (n_views, 2))
    tilts = np.linspace(-60.0, 60.0, n_views)
    write_transforms_folder(SavedAlignment(xf, tilts, np.ones(n_views, bool), (size, size), 0.2), d / "al", "raw")
    return raw, d / "al"


def make_local_file(d: Path, size: int, n_views: int) -> Path:
    """A 5 x 5 local file for the input, smooth across the patches as solved ones are: each patch and view turned by
    up to 0.15 deg, shifted by up to 1.5 px and its tilt changed by up to 0.1 deg, in ramps across the grid plus a
    little noise per view (IMOD's format, `io.imod_local`)."""
    from napari_tomoalign.io.imod_local import LocalTransforms, write_local_transforms

    rng = np.random.default_rng(1)
    gx, gy = (g.ravel()[:, None] / 2.0 - 1.0 for g in np.meshgrid(np.arange(5), np.arange(5)))  # -1 .. 1, X fastest
    noise = rng.normal(0.0, 0.2, (4, n_views))
    ang = np.radians(0.1 * (gx * noise[0] + gy * noise[1]) + 0.05 * gx)
    xf = np.zeros((25, n_views, 2, 3))
    xf[..., 0, 0], xf[..., 0, 1], xf[..., 1, 0], xf[..., 1, 1] = np.cos(ang), -np.sin(ang), np.sin(ang), np.cos(ang)
    xf[..., 0, 2], xf[..., 1, 2] = gx * (1.0 + noise[2]), gy * (1.0 + noise[3])
    step = size // 5
    tilt = np.broadcast_to(0.1 * gx * gy, ang.shape).copy()
    lt = LocalTransforms((5, 5), (step // 2, step // 2), (step, step), 2.0, tilt, xf)
    path = d / "benchlocal.xf"
    write_local_transforms(path, lt)
    return path


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(args: list[str]) -> tuple[float, int]:
    """Wall time of a child process, and the peak resident memory of all children so far (bytes)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", *args], check=True, env={**os.environ})
    return time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def assemble(parts: list[Path], out: Path, shape: tuple[int, int, int]) -> None:
    """One volume from bands of rows, a section at a time; each part deleted once copied."""
    n_z, ny, nx = shape
    w = MrcStreamWriter(out, shape, np.int16, 2.0, stack=False)
    maps = [mrcfile.mmap(p, permissive=True) for p in parts]
    for z in range(n_z):
        w.write(np.concatenate([m.data[z] for m in maps], axis=0))
    w.close()
    for m, p in zip(maps, parts):
        m.close()
        p.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--views", type=int, default=61)
    parser.add_argument("--thickness", type=int, default=1000)
    parser.add_argument("--memory", default="2G")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument("--local", action="store_true", help="time reconstruct --local with a 5 x 5 local file")
    args = parser.parse_args()
    from napari_tomoalign.reconstruction.reconstruct_job import parse_memory

    mem = parse_memory(args.memory)
    d = Path(tempfile.mkdtemp(prefix="bench_stream_", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        raw, al = make_input(d, args.size, args.views)
        print(f"input: {args.views} x {args.size} x {args.size} int16 ({raw.stat().st_size / 2**30:.2f} GiB) made in "
              f"{time.perf_counter() - t0:.0f} s; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        out = d / "tomo.rec"
        if args.local:
            local = make_local_file(d, args.size, args.views)
            t_local, rss = run([CLI, "reconstruct", str(raw), "--alignment", str(al), "--local", str(local), "--output",
                                str(out), "--thickness", str(args.thickness), "--memory", args.memory])  # its kernel line
            print(f"streamed, local alignments: tomoalign reconstruct --local {t_local:7.1f} s, peak RSS"
                  f" {rss / 2**30:.2f} GiB; load {os.getloadavg()[0]:.1f}")
            out.unlink()
            t_global, _ = run([CLI, "reconstruct", str(raw), "--alignment", str(al), "--output", str(out),
                               "--thickness", str(args.thickness), "--memory", args.memory, "--quiet"])
            print(f"streamed, global: {t_global:7.1f} s; local / global (whole processes) {t_local / t_global:.2f};"
                  f" load {os.getloadavg()[0]:.1f}")
            return
        c0 = children_cpu_s()
        t_stream, rss = run([CLI, "reconstruct", str(raw), "--alignment", str(al), "--output", str(out),
                             "--thickness", str(args.thickness), "--memory", args.memory, "--quiet"])
        with mrcfile.open(out, header_only=True) as m:
            shape = (int(m.header.nz), int(m.header.ny), int(m.header.nx))
            mode = int(m.header.mode)
        c_stream = children_cpu_s() - c0
        print(f"streamed: tomoalign reconstruct {t_stream:7.1f} s (cpu {c_stream:.0f} s), peak RSS {rss / 2**30:.2f} GiB"
              f" (target <= 2), output {shape} mode {mode}; load {os.getloadavg()[0]:.1f}")
        out.unlink()
        edges = np.linspace(0, args.size, args.chunks + 1).astype(int)
        parts, t_chunks, c1 = [], 0.0, children_cpu_s()
        for k in range(args.chunks):
            part = d / f"chunk{k}.rec"
            dt, _ = run([CHUNK, str(raw), str(al), str(part), str(args.thickness), str(mem), str(edges[k]),
                         str(edges[k + 1])])
            t_chunks += dt
            parts.append(part)
        c_chunks = children_cpu_s() - c1
        t1, a1 = time.perf_counter(), time.process_time()
        assemble(parts, d / "assembled.rec", shape)
        t_asm, c_asm = time.perf_counter() - t1, time.process_time() - a1
        t_hand = t_chunks + t_asm
        print(f"by hand: {args.chunks} chunk processes {t_chunks:7.1f} s + assembling {t_asm:5.1f} s = {t_hand:7.1f} s;"
              f" peak RSS of all children {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20:.2f} GiB")
        print(f"streamed / by hand: wall {t_stream / t_hand:.2f}, cpu {c_stream / (c_chunks + c_asm):.2f} (target <= 1.2);"
              f" load {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
