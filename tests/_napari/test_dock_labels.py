"""What the viewer names and writes for an IMOD user: the sliders read "view", "y", "x" once the dock pairs a
tilt series (and a volume's z, y, x), and a crowded field of beads gets ids only where they fit, in their marker's
colour; the dock's slice view zooms and pans."""

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.layers import Points  # noqa: E402
from qtpy.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from qtpy.QtGui import QImage, QMouseEvent, QWheelEvent  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from napari_tomoalign._napari.dock.inputs import InputsSection  # noqa: E402
from napari_tomoalign._napari.dock.labels import DARK_IDS, LIGHT_IDS, label_colors, label_mask, nearest_neighbour  # noqa: E402
from napari_tomoalign._napari.dock.markers import MarkersPanel  # noqa: E402
from napari_tomoalign._napari.dock.tomograms import SliceView  # noqa: E402
from napari_tomoalign._napari.dock.undo import UndoStack  # noqa: E402
from napari_tomoalign._napari.dock.zoom import ZoomState, window  # noqa: E402
from napari_tomoalign._napari.layers import markers_to_points, plain_label  # noqa: E402
from napari_tomoalign.io.markers import MarkerTable  # noqa: E402

TILTS = np.linspace(-60, 60, 5)


def test_dims_read_view_y_x_once_a_tilt_series_is_paired(make_napari_viewer):
    viewer = make_napari_viewer()
    assert viewer.dims.axis_labels[-1] != "x"  # napari's default before the dock
    viewer.add_image(np.zeros((5, 48, 64), np.float32), name="stack", metadata={"tilt_angles_deg": TILTS})
    inputs = InputsSection(viewer, lambda text: None)
    inputs.refresh()
    middle = int(viewer.dims.current_step[0])
    assert tuple(viewer.dims.axis_labels) == (f"view {middle + 1}", "y", "x")  # numbered from 1, as in 3dmod
    viewer.dims.set_current_step(0, 4)
    assert viewer.dims.axis_labels[0] == "view 5"  # the last of 5 views, whatever napari's box says (4)
    # Markers but no image: the slider still reads "view", never "-3".
    stack = viewer.layers["stack"]
    viewer.layers.remove(stack)
    viewer.dims.axis_labels = ["-3", "-2", "-1"]
    viewer.add_layer(Points(np.array([[2.0, 10.0, 10.0]]), features={"marker": [1]}, name="m"))
    inputs.refresh()
    assert tuple(viewer.dims.axis_labels) == (f"view {int(viewer.dims.current_step[0]) + 1}", "y", "x")
    viewer.layers.remove("m")
    viewer.layers.append(stack)
    inputs.refresh()
    # A 4-D layer: the tilt series' axes are the last three; the new leading axis keeps napari's label.
    viewer.add_image(np.zeros((2, 5, 48, 64), np.float32), name="4-D")
    inputs.refresh()
    assert tuple(plain_label(a) for a in viewer.dims.axis_labels[-3:]) == ("view", "y", "x")
    assert not viewer.dims.axis_labels[0].startswith("view")
    viewer.layers.remove("4-D")
    # A label the user gave is kept.
    viewer.dims.axis_labels = ["angle", "-2", "-1"]
    inputs.refresh()
    assert tuple(viewer.dims.axis_labels) == ("angle", "y", "x")
    # No tilt series left: napari's labels come back (a volume opened next is not called "view").
    viewer.dims.axis_labels = ["view", "y", "x"]
    viewer.layers.remove("stack")
    inputs.refresh()
    assert not any(a.startswith("view") for a in viewer.dims.axis_labels)
    inputs.close()


def test_slice_view_draws_sections_of_both_tomograms_in_the_dock(qtbot):
    a = np.zeros((8, 16, 24), np.float32)
    a[3, 5, 7] = 10.0  # a bright voxel: section 4 of 8 (z), row 6 (y)
    view = SliceView()
    qtbot.addWidget(view.widget)
    assert view.show([(a, 1.2, "A"), (2 * a, 1.2, "B")]) == ["A", "B"]
    assert view.slider.maximum() == 7 and view.slider.value() == 4  # the middle section
    view.slider.setValue(3)
    image = view.pixels(0).toImage()
    assert image.width() >= 300 and abs(image.height() / image.width() - 16 / 24) < 0.02  # the dock's width, in shape
    assert view.where.text() == "z\u00a04\u00a0of\u00a08, -1\u00a0nm"  # wraps at the comma only (s14: "-60 / nm")
    # The wheel zooms both panels about the point under the cursor; a drag pans; a double-click shows it all.
    bright = view.images[0]
    x, y = bright.width() / 2 + (7.5 / 24 - 0.5) * image.width(), bright.height() / 2 + (5.5 / 16 - 0.5) * image.height()
    wheel(bright, x, y, notches=6)  # x 1.25^6 = 3.8
    assert view.zoom.zoom == pytest.approx(1.25**6) and "zoom\u00a0x3.81" in view.where.text()
    zoomed = qimage_array(view.pixels(0))
    assert zoomed.shape[1] == image.width()  # the panel keeps its size
    ys, xs = np.nonzero(zoomed > 128)  # the bright voxel, now about 4x wider, still under the cursor
    assert 3 * image.width() / 24 < np.ptp(xs) + 1 < 5 * image.width() / 24
    left, top = (bright.width() - image.width()) / 2, (bright.height() - image.height()) / 2
    voxel = image.width() / round(24 / view.zoom.zoom)  # the window is whole voxels: within half of one
    assert abs(xs.mean() - (x - left)) < 0.6 * voxel and abs(ys.mean() - (y - top)) < 0.6 * voxel
    np.testing.assert_array_equal(qimage_array(view.pixels(1)) > 128, zoomed > 128)  # both panels: one grid
    before = view.zoom.centre
    drag(qtbot, bright, (x, y), (x + 40, y))
    assert view.zoom.centre[1] < before[1] and view.zoom.centre[0] == pytest.approx(before[0])
    qtbot.mouseDClick(bright, Qt.MouseButton.LeftButton)
    assert view.zoom.zoom == 1.0 and "zoom" not in view.where.text()
    wheel(bright, x, y, notches=2)
    view.reset_zoom.click()
    assert view.zoom.zoom == 1.0
    view.plane.setCurrentIndex(1)  # XZ: one section per row of the tomogram
    assert view.slider.maximum() == 15 and "y 9 of 16" in view.where.text().replace("\u00a0", " ")
    assert view.show([(a, 2.0, "only")]) == ["only"] and not view.titles[1].isVisibleTo(view.widget)
    view.clear()
    assert view.shown == [] and not view.widget.isVisibleTo(None)


def wheel(widget, x, y, notches):
    pos = QPointF(x, y)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(), QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def drag(qtbot, widget, start, end):
    """A left-button drag: napari's and Qt's test helpers do not hold the button during a move."""
    for kind, (x, y), buttons in ((QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton),
                                  (QEvent.Type.MouseMove, end, Qt.MouseButton.LeftButton),
                                  (QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)):
        pos = QPointF(x, y)
        QApplication.sendEvent(widget, QMouseEvent(kind, pos, widget.mapToGlobal(pos), Qt.MouseButton.LeftButton,
                                                   buttons, Qt.KeyboardModifier.NoModifier))


def qimage_array(pixmap):
    image = pixmap.toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    return np.frombuffer(image.constBits().asstring(stride * h), np.uint8).reshape(h, stride)[:, :w]


def test_zoom_state_keeps_the_point_under_the_cursor_and_stays_inside():
    z = ZoomState().zoomed(4.0, (0.25, 0.75))
    assert z.zoom == 4.0 and z.centre == pytest.approx((0.3125, 0.6875))  # (0.25, 0.75) stays a quarter in
    rows, cols = window((100, 200), z)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (19, 44, 112, 162)
    assert ZoomState(4.0, (0.0, 1.0)).clamped().centre == (0.125, 0.875)  # kept inside: half of 1/4 from the edge
    assert ZoomState().zoomed(1000.0, (0.5, 0.5)).zoom == 16.0 and ZoomState(0.1).clamped().zoom == 1.0
    assert z.panned(0.0, 10.0).centre[1] == pytest.approx(0.125)  # a long drag stops at the edge
    assert window((5, 5), ZoomState(16.0)) == (slice(2, 3), slice(2, 3))  # at least one pixel


def crowded_markers():
    """View 0: a clump of three beads 10 px apart, and two lone beads 100 px from everything; view 1: one bead."""
    xy = np.array([[50.0, 50.0], [60.0, 50.0], [50.0, 60.0], [200.0, 50.0], [50.0, 200.0], [100.0, 120.0]])
    table = MarkerTable(np.array([0, 0, 0, 0, 0, 1]), np.array([101, 102, 103, 4, 5, 6]), xy, (256, 256))
    data, kwargs = markers_to_points(table, "crowded")
    kwargs["size"] = 7.5  # 5 px beads
    return Points(data, **kwargs)


def test_ids_drawn_only_where_they_fit_and_in_the_markers_colour(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_layer(crowded_markers())
    panel = MarkersPanel(viewer, UndoStack(), lambda text: None)
    viewer.scene.camera.zoom = 2.0
    panel.watch(layer)
    strings = list(layer.text.string.array)
    assert strings == ["", "", "", "4", "5", "6"]  # the clump's ids would cover each other's rings
    colours = np.asarray(layer.text.color.array)
    np.testing.assert_allclose(colours, label_colors(layer.face_color, 0.0))  # its ring's hue, not white
    assert len({tuple(np.round(c, 6)) for c in colours}) == 6
    layer.selected_data = {1}  # the selected point is always labelled
    assert list(layer.text.string.array)[:3] == ["", "102", ""]
    layer.selected_data = set()
    viewer.scene.camera.zoom = 40.0  # zoomed in, the clump's beads are far apart on screen
    assert list(layer.text.string.array) == ["101", "102", "103", "4", "5", "6"]
    viewer.scene.camera.zoom = 2.0
    panel.ids.value = "none"
    assert not any(layer.text.string.array)
    panel.ids.value = "all"
    assert list(layer.text.string.array) == ["101", "102", "103", "4", "5", "6"]
    panel.unwatch()


def test_label_mask_keeps_points_to_check_and_refuses_unknown_modes():
    view = np.array([0, 0, 0, 1])
    yx = np.array([[0.0, 0.0], [0.0, 4.0], [0.0, 30.0], [0.0, 0.0]])
    np.testing.assert_allclose(nearest_neighbour(view, yx), [4.0, 4.0, 26.0, np.inf])
    ids = np.array([7, 8, 9, 10])
    spacing = nearest_neighbour(view, yx) * 1.0
    shown = label_mask("where they fit", ids, spacing, 8.0, 10.0, keep=np.array([False, True, False, False]))
    np.testing.assert_array_equal(shown, [False, True, True, True])  # 26 px fits a ring (8) and 2 digits (16)
    np.testing.assert_array_equal(label_mask("selected and to check", ids, spacing, 8.0, 10.0,
                                             keep=np.array([True, False, False, False])), [True, False, False, False])
    with pytest.raises(ValueError, match="unknown marker id mode"):
        label_mask("some", ids, spacing, 8.0, 10.0)


def test_id_colours_keep_the_hue_and_contrast_with_the_image():
    import colorsys

    rgba = np.array([[0.25, 0.25, 1.0, 1.0], [1.0, 1.0, 0.25, 1.0], [0.25, 1.0, 0.25, 0.25]])  # blue, yellow, faded
    weights = np.array([0.2126, 0.7152, 0.0722])
    for background, target in ((0.1, LIGHT_IDS), (0.5, LIGHT_IDS), (0.95, DARK_IDS)):
        out = label_colors(rgba, background)
        np.testing.assert_allclose(out[:, :3] @ weights, target, atol=1e-9)  # one lightness for every marker
        np.testing.assert_allclose(out[:, 3], rgba[:, 3])  # an excluded marker's id stays faded
        hues = [colorsys.rgb_to_hsv(*c[:3])[0] for c in out]
        np.testing.assert_allclose(hues, [colorsys.rgb_to_hsv(*c[:3])[0] for c in rgba], atol=1e-6)


def test_each_id_contrasts_with_the_image_under_it(make_napari_viewer):
    """A stack dark on the left and light on the right: ids over the left are light, over the right dark."""
    viewer = make_napari_viewer()
    stack = np.zeros((2, 256, 256), np.float32)
    stack[:, :, 128:] = 1.0
    image = viewer.add_image(stack, name="stack", contrast_limits=(0.0, 1.0))
    layer = viewer.add_layer(crowded_markers())
    panel = MarkersPanel(viewer, UndoStack(), lambda text: None)
    panel.image_of = lambda: image
    panel.watch(layer)
    lightness = np.asarray(layer.text.color.array)[:, :3] @ np.array([0.2126, 0.7152, 0.0722])
    right = layer.data[:, 2] > 140  # the label sits right of its ring: x = 200 is over the light half
    np.testing.assert_allclose(lightness[right], DARK_IDS, atol=1e-9)
    np.testing.assert_allclose(lightness[~right], LIGHT_IDS, atol=1e-9)
    assert right.sum() == 1
    image.contrast_limits = (1.0, 2.0)  # the whole image now shows black: every id turns light
    lightness = np.asarray(layer.text.color.array)[:, :3] @ np.array([0.2126, 0.7152, 0.0722])
    np.testing.assert_allclose(lightness, LIGHT_IDS, atol=1e-9)
    panel.unwatch()
    image.contrast_limits = (0.0, 1.0)  # no longer followed
    assert np.allclose(np.asarray(layer.text.color.array)[:, :3] @ np.array([0.2126, 0.7152, 0.0722]), LIGHT_IDS)


def test_a_slice_view_shown_before_its_layout_is_drawn_again_at_its_width(qtbot):
    """Session 11's finding 15: a thick tomogram's first section was drawn wider than the dock (the widget's width
    before the layout), and cut, until the slider moved. A change of width draws it again."""
    view = SliceView()
    qtbot.addWidget(view.widget)
    view.room = lambda: 4000  # height to spare: the width alone limits the panel (a thick volume's case)
    view.widget.resize(700, 900)  # the width a widget has before the dock lays it out
    view.show([(np.random.default_rng(0).normal(size=(199, 64, 64)).astype(np.float32), 1.0, "thick")])
    qtbot.waitUntil(lambda: view.widget.width() == 700)
    assert view.pixels(0).width() == 696
    view.widget.resize(400, 900)  # laid out in the dock: no slider moved
    qtbot.waitUntil(lambda: view.widget.width() == 400)
    assert view.pixels(0).width() == 396
