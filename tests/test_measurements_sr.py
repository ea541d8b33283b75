"""The reader's measurements in the DICOM SR (issue 19, item 1): TID 1410 planar ROI groups beside the TID 1500
quantities, on their source slices, read back with highdicom and checked by dciodvfy."""

from __future__ import annotations

import numpy as np
import pytest

from test_export_support import dciodvfy, require_tools


def test_rulers_and_ellipses_go_into_the_sr_on_their_slices(tmp_path):
    import highdicom as hd
    import pydicom

    from jcs_viewer.io import load_study
    from jcs_viewer.io.phantom import write_demo_study
    from jcs_viewer.pipeline.runner import analyze
    from jcs_viewer.report.bundle import export_all
    from jcs_viewer.session.measurements import Measurement

    write_demo_study(tmp_path / "demo", n_slices=12, seed=2, size=96)
    volume = load_study(tmp_path / "demo" / "dicom")
    result = analyze(volume)
    ruler = Measurement("ruler", 5, (20.0, 40.0), (60.0, 40.0))
    ellipse = Measurement("ellipse", 7, (30.0, 30.0), (50.0, 44.0))
    written = export_all(result, volume, tmp_path / "out", report=False, dicom_results=True,
                         measurements=[ruler, ellipse])
    sr = hd.sr.srread(written["results_sr"])
    rois = sr.content.get_planar_roi_measurement_groups()
    assert [g.tracking_identifier for g in rois] == ["Reader ruler 1 (slice 6)", "Reader ellipse 2 (slice 8)"]
    spacing = tuple(float(s) for s in volume.spacing[1:])
    length = {m.name.meaning: m.value for m in rois[0].get_measurements()}
    assert length == {"Length": pytest.approx(ruler.length_mm(spacing), abs=1e-3)}
    stats = ellipse.stats(volume.array[7], spacing)
    got = {(m.name.meaning, getattr(m.derivation, "meaning", None)): (m.value, m.unit.value)
           for m in rois[1].get_measurements()}
    assert got[("Area", None)] == (pytest.approx(stats["area_mm2"], abs=1e-3), "mm2")
    assert got[("Attenuation Coefficient", "Mean")] == (pytest.approx(stats["mean"], abs=1e-3), "[hnsf'U]")
    assert got[("Attenuation Coefficient", "Minimum")][0] == pytest.approx(stats["min"])
    # Each region points at its own source slice, with the drawn geometry (pixel corner at 0, 0).
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in volume.source_files]
    for group, z in ((rois[0], 5), (rois[1], 7)):
        referenced = group.roi.ContentSequence[0].ReferencedSOPSequence[0]
        assert referenced.ReferencedSOPInstanceUID == sources[z].SOPInstanceUID
    np.testing.assert_allclose(rois[0].roi.value, [[20.5, 40.5], [60.5, 40.5]])
    assert rois[1].roi.graphic_type.value == "ELLIPSE" and np.asarray(rois[1].roi.value).shape == (4, 2)
    require_tools("dciodvfy")
    errors, _ = dciodvfy(written["results_sr"])
    assert errors == [], errors
