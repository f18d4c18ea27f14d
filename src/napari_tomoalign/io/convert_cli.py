"""The command line of ``tomoalign convert`` (its arguments and its run); the work is `io.convert.convert`'s."""

from __future__ import annotations

import warnings

from .convert import FORMATS, convert, normalise_format
from .limits import pixel_size_arg


def add_convert_arguments(p) -> None:
    """The arguments of ``tomoalign convert IN --to FORMAT --output OUT`` (an ``argparse`` parser)."""
    p.add_argument("input", help="a 'tomoalign align' folder, an IMOD NAME.xf (with NAME.tlt beside it) or a folder"
                   " holding one, an AreTomo .aln, a portal .json, a RELION tomograms.star or a Warp .xml")
    p.add_argument("--to", required=True, metavar="FORMAT", help=f"one of {', '.join(FORMATS)}")
    p.add_argument("--output", required=True, metavar="OUT", help="a file (.aln, .json: added if missing) or a folder")
    p.add_argument("--from", dest="from_format", metavar="FORMAT", help="the input's format (default: from its name)")
    p.add_argument("--name", help="series / tomogram name: the output's file name, and the tomogram to read from a"
                   " RELION star that lists several (default: the series' name, as IMOD names a data set's files: the"
                   " stem an alignment folder records, an IMOD folder's NAME.xf, else the input file's stem)")
    p.add_argument("--pixel-size-nm", type=pixel_size_arg, help="pixel size (RELION needs one; default: the input's)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"),
                   help="image size, for inputs that do not record it (an IMOD .xf or a portal JSON written to another"
                        " format)")
    p.add_argument("--n-views", type=int, metavar="N", help="views of the raw stack: restores the views RELION and the"
                   " portal JSON leave out (they list only the views used)")
    p.add_argument("--stack", metavar="STACK", help="the raw stack: its header gives the number of views, the image"
                   " size and a pixel size the input lacks, and its tilt file (.rawtlt, .mdoc) the excluded views' tilts")
    p.add_argument("--thickness", type=int, metavar="PX", help="volume thickness to record (default: the image height)")
    o = p.add_argument_group("RELION's optics (the alignment does not know them; each one not given is written as"
                             " RELION's common value, and said)")
    o.add_argument("--voltage", type=float, metavar="KV", help="the microscope's voltage in kV (default 300)")
    o.add_argument("--cs", type=float, metavar="MM", help="spherical aberration in mm (default 2.7)")
    o.add_argument("--amplitude-contrast", type=float, metavar="F", help="amplitude contrast (default 0.1)")
    o.add_argument("--hand", type=float, metavar="H", help="rlnTomoHand, -1 or 1 (default -1)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def cmd_convert(args) -> int:
    """Run ``tomoalign convert``; every warning of the readers and writers (`MagnificationLoss`, patches
    ignored, ...) is printed as one line, once, on standard error (`cli.warn`)."""
    from ..cli import warn
    from .relion import checked_optics

    if normalise_format(args.to) == "relion":
        checked_optics(optics_of(args), warn=False)  # a value out of range: said before anything is read
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = convert(args.input, args.to, args.output, from_format=args.from_format, name=args.name,
                        pixel_size_nm=args.pixel_size_nm, image_size=tuple(args.image_size) if args.image_size else None,
                        thickness_px=args.thickness, n_views=args.n_views, stack=args.stack, overwrite=args.force,
                        optics=optics_of(args))
    for text in dict.fromkeys(str(w.message).replace("\n", " ") for w in caught
                              if issubclass(w.category, UserWarning) and not issubclass(w.category, DeprecationWarning)):
        warn(text)
    if not args.quiet:
        if normalise_format(args.to) == "relion":
            from .mdoc_dose import relion_dose_note

            note = relion_dose_note(args.stack)
            if note:
                print(note)
        print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def optics_of(args) -> dict:
    """The RELION optics given on the command line (`relion.checked_optics` checks them)."""
    given = {"voltage_kv": args.voltage, "cs_mm": args.cs, "amplitude_contrast": args.amplitude_contrast,
             "hand": args.hand}
    return {k: v for k, v in given.items() if v is not None}
