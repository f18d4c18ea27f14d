"""Many tilt series at once, on one machine or a cluster: ``tomoalign batch``.

Each series is one dask.distributed task (`batch.task.process_series`), on one thread, into
``OUTPUT/NAME/``, by one of two paths:

- ``align``, for a series with markers: it reads the markers and tilt angles (a stack only
  memory-mapped, for its header), aligns, and writes the files of ``tomoalign align``;
- ``run``, for a stack without markers but with a bead diameter (the table's ``bead_diameter_nm`` or
  ``bead_diameter_px``, or the batch's): it tracks the beads, aligns robustly, warps and reconstructs,
  writing what ``tomoalign run`` writes (`batch.run_series`).

A series with neither is reported as ``no-markers``. A failure becomes a row of the summary and
stops nothing else. A series whose outputs are all there and newer than its inputs is skipped
unless ``force``. At the end ``OUTPUT/summary.csv`` has one row per series (status, path, RMS and
mean residual, markers, views, observations, flagged points, beads and points tracked, time, error,
outlier) and ``OUTPUT/summary.png`` plots RMS per series with the outliers in red (matplotlib is
optional).

Where it runs:

- by default a ``LocalCluster`` on 127.0.0.1 with one single-threaded worker process per core
  (so a worker holds one series at a time), closed at the end. Its dashboard (needs ``bokeh``)
  is announced through ``log``; a progress bar goes to a terminal's stderr.
- ``scheduler="tcp://HOST:8786"``: an existing cluster, e.g. one started by hand with
  ``dask scheduler`` and ``dask worker tcp://HOST:8786 --nthreads 1`` on each machine (each needs
  this package installed and the data at the same paths).
- On SLURM, with ``dask-jobqueue`` (``pip install dask-jobqueue``), start the cluster from a login
  node and pass its address, or its client::

      >>> from dask_jobqueue import SLURMCluster
      >>> from dask.distributed import Client
      >>> from napari_tomoalign.batch import run_batch
      >>> cluster = SLURMCluster(queue="cpu", cores=8, processes=8, memory="32GB", walltime="02:00:00",
      ...                        job_extra_directives=["--cpus-per-task=8"])
      >>> cluster.scale(jobs=4)                # 4 SLURM jobs x 8 single-threaded workers
      >>> run_batch("session/*.mrc", "aligned", client=Client(cluster))

  or print ``cluster.scheduler_address`` and run
  ``tomoalign batch 'session/*.mrc' --output aligned --scheduler tcp://NODE:PORT``.

  (``processes=8`` with ``cores=8`` gives one thread per worker, as here.) The dashboard is at
  ``cluster.dashboard_link``.
"""

from .runner import BatchResult, machine_workers, outliers, run_batch
from .series import SeriesSpec, discover
from .task import is_finished, process_series, series_path

__all__ = ["BatchResult", "SeriesSpec", "discover", "is_finished", "machine_workers", "outliers", "process_series",
           "run_batch", "series_path"]
