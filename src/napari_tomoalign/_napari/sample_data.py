"""npe2 sample data: a synthetic, misaligned tilt series of gold beads with its clicked markers."""

from __future__ import annotations

from typing import Any

from ..io.markers import MarkerTable


def make_sample_data(seed: int = 0) -> list[tuple[Any, dict[str, Any], str]]:
    """The sample tilt series (61 views of 512 x 512, -60..60 deg) and its markers layer.

    The truth (`sample.SampleTiltSeries`) rides along in the image layer's metadata as ``"sample"``.
    """
    from ..simulation.sample import make_sample_tilt_series
    from .layers import markers_to_points

    s = make_sample_tilt_series(seed=seed)
    n, rows, cols = s.images.shape
    image_meta = {
        "tilt_angles_deg": s.tilt_angles_deg,
        "tilt_source": "simulated (nominal angles)",
        "pixel_size_nm": s.pixel_size_nm,
        "sample": s,
    }
    image = (s.images, {"name": "sample tilt series", "scale": (1.0, s.pixel_size_nm, s.pixel_size_nm),
                        "metadata": image_meta, "colormap": "gray"}, "image")
    data, kwargs = markers_to_points(MarkerTable(s.view, s.marker, s.xy, (cols, rows), "simulated"), "sample markers")
    kwargs["scale"] = (1.0, s.pixel_size_nm, s.pixel_size_nm)
    return [image, (data, kwargs, "points")]
