"""What the dock's sections share about past runs: the results by name, the last run's inputs, and the
points triage visits next."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...alignment.result import Alignment
from ...reconstruction.positioning import SurfaceAnalysis
from ...workflows import PipelineResult
from .bead_logic import Visit
from .loaded import LoadedAlignment
from .prealigned import drawn


@dataclass
class Runs:
    """The alignments made in this dock, by name, and what the last one (or the last Track) was made from; the
    alignments loaded from files (*Load alignment...*), by `LoadedAlignment.choice_name`, chosen as those made."""

    results: dict[str, PipelineResult] = field(default_factory=dict)
    last: PipelineResult | None = None
    markers: Any = None  # the markers layer of the last run (or of the last Track)
    image: Any = None  # the tilt series of the last run (None when aligned without one)
    visits: list[Visit] = field(default_factory=list)  # triage order
    position: int = 0
    prediction: Alignment | None = None  # what Move to predicted uses: the last Align's, or the last Track's
    surfaces: dict[str, SurfaceAnalysis | None] = field(default_factory=dict)  # IMOD's surface analysis, by name
    aligned_on: tuple[Any, Any] | None = None  # (markers, image) of the last Align: a warm start's own series only
    on_add: list[Callable[[PipelineResult], None]] = field(default_factory=list)  # told of each result kept
    sources: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # (markers, image) each result was made from
    loaded: dict[str, LoadedAlignment] = field(default_factory=dict)  # loaded from files, by name
    on_load: list[Callable[[str], None]] = field(default_factory=list)  # told the name of each alignment loaded

    def add(self, result: PipelineResult, markers: Any, image: Any, visits: list[Visit],
            surfaces: SurfaceAnalysis | None = None) -> None:
        self.results[result.name] = result
        self.loaded.pop(result.name, None)  # a run named as a loaded alignment is: the run's, one name one alignment
        self.surfaces[result.name] = surfaces
        self.sources[result.name] = (markers, image)
        self.last, self.markers, self.image = result, markers, image
        self.aligned_on = (markers, image)
        self.prediction = drawn(result)  # over the raw stack, a .prexg's run too (`prealigned.drawn`)
        self.visits, self.position = visits, 0
        for callback in self.on_add:
            callback(result)

    def add_loaded(self, loaded: LoadedAlignment, markers: Any, image: Any) -> str:
        """Keep ``loaded`` beside the alignments made (the same file loaded again replaces itself; another file of the
        same name is numbered); its name in the lists."""
        base = name = loaded.choice_name()
        k = 2
        while name in self.results or (name in self.loaded and self.loaded[name].given != loaded.given):
            name, k = f"{base} {k}", k + 1
        self.loaded[name] = loaded
        self.sources[name] = (markers, image)
        for callback in self.on_load:
            callback(name)
        return name

    def names(self) -> list[str]:
        """The alignments to choose from: those made, then those loaded."""
        return [*self.results, *self.loaded]

    def source(self, name: str) -> tuple[Any, Any]:
        """``(markers, image)`` the result ``name`` was made from (the last run's when unknown): Save writes its
        aligned stack from its own series, whichever was aligned last."""
        return self.sources.get(name, (self.markers, self.image))

    def tracked(self, markers: Any, image: Any, alignment: Alignment | None, visits: list[Visit]) -> None:
        """A Track filled ``markers``: triage visits its points to check first."""
        self.markers, self.image, self.prediction = markers, image, alignment
        self.visits, self.position = visits, 0
