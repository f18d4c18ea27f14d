"""IMOD's log notation for a variable mapping, to compare ours with the mappings tiltalign prints."""

from napari_tomoalign.alignment.grouping import Mapping


def imod_label(mapping: Mapping, view: int) -> str:
    """IMOD's log notation for one view: ``'7'``, ``'1+3'``, ``'26+fix'`` or ``'fixed'`` (unknowns labelled by
    their 1-based anchor view)."""
    a, b = int(mapping.var_a[view]), int(mapping.var_b[view])
    if a < 0 and b < 0:
        return "fixed"
    label = [str(int(mapping.anchor_view[k]) + 1) if k >= 0 else "fix" for k in (a, b)]
    if b < 0 and mapping.w_a[view] == 1.0:
        return label[0]
    if a < 0 and mapping.w_b[view] == 1.0:
        return label[1]
    return f"{label[0]}+{label[1]}" if a >= 0 else f"{label[1]}+fix"  # IMOD names the unknown first
