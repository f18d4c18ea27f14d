"""Every warning of the command line is printed in one place (`cli.warn`), with one prefix, on standard error (s15 new
user: "tomoalign: warning:" and "warning:" in one run, some on standard output in the report, some on standard error)."""

import warnings

from napari_tomoalign.cli import main, warn


def test_every_prefix_comes_out_as_one(capsys):
    for text in ("warning: a", "tomoalign: warning: a", "a", "warning: a\nsecond line"):
        warn(text)
    err = capsys.readouterr().err.splitlines()
    assert err[:3] == ["tomoalign: warning: a"] * 3 and err[3] == "tomoalign: warning: a second line"


def test_the_reports_warnings_go_to_standard_error_with_the_one_prefix(imod_data, tmp_path, capsys):
    args = ["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--tilt-axis", "77.5"]
    assert main([*args, "--output", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert not [line for line in out.splitlines() if "warning:" in line] and "RMS residual" in out  # no warning here
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("tomoalign: warning: ") for line in lines), lines
    assert any("the markers' tilt axis (about" in line for line in lines)
    assert main([*args, "--output", str(tmp_path / "q"), "--quiet"]) == 0
    out, quiet_err = capsys.readouterr()
    assert out == "" and quiet_err.replace(str(tmp_path / "q"), "") == err.replace(str(tmp_path / "o"), "")


def test_a_python_warning_and_a_report_warning_share_the_prefix(imod_data, tmp_path, capsys, monkeypatch):
    import napari_tomoalign.file_jobs as file_jobs

    real = file_jobs.align_to_folder

    def noisy(*a, **k):
        warnings.warn("something odd", RuntimeWarning, stacklevel=1)
        return real(*a, **k)

    monkeypatch.setattr(file_jobs, "align_to_folder", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        assert main(["align", str(imod_data / "BBa.fid"), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--tilt-axis",
                     "77.5", "--output", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "tomoalign: warning: something odd" and len(lines) >= 2
    assert all(line.startswith("tomoalign: warning: ") for line in lines)
