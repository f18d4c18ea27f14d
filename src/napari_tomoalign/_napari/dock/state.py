"""What the dock's sections share about past runs: the results by name and the last run's inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...workflows import PipelineResult


@dataclass
class Runs:
    """The alignments made in this dock, by name, and what the last one was made from."""

    results: dict[str, PipelineResult] = field(default_factory=dict)
    last: PipelineResult | None = None
    markers: Any = None  # the markers layer of the last run
    image: Any = None  # the tilt series of the last run (None when aligned without one)
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))  # triage order
    position: int = 0

    def add(self, result: PipelineResult, markers: Any, image: Any, order: np.ndarray) -> None:
        self.results[result.name] = result
        self.last, self.markers, self.image = result, markers, image
        self.order, self.position = order, 0
