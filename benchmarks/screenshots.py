"""Screenshots for the README, taken from a real QGIS: the plugin's dialog, and a result next to its input.

Run under a virtual X server (``make screenshots`` does ``xvfb-run``): the script opens QGIS with the GUI,
georeferences the committed Sentinel-2 10 m crop (B4, B3, B2, B8), fills the dialog for a Deep Image
Prior run ×2 over a 48 × 48 pixel extent at the fast preset, grabs it (``docs/dialog.png``), runs the
job the dialog built (the same ``CoreJobTask``, on the CPU), and grabs two map canvases showing the
input and the result layer the task added, styled like the input, over the extent (``docs/result.png``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from qgis_helpers import georeferenced_10m  # noqa: E402  (the committed 10 m crop on a UTM 33N 10 m grid)
#: The extent processed, in input pixels: columns 40–87, rows 40–87 (small: the run takes minutes on a CPU).
WINDOW = (40, 40, 48, 48)


def settle(app, seconds: float = 0.5) -> None:
    """Let Qt lay out and paint for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def side_by_side(layers, extent, titles: list[str], edge: int):
    """A widget with one map canvas per layer, all showing ``extent``, titled underneath."""
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QColor
    from qgis.PyQt.QtWidgets import QGridLayout, QLabel, QWidget

    widget = QWidget()
    grid = QGridLayout(widget)
    canvases = []
    for column, (layer, title) in enumerate(zip(layers, titles)):
        canvas = QgsMapCanvas(widget)
        canvas.setFixedSize(edge, edge)
        canvas.setCanvasColor(QColor("white"))
        canvas.setDestinationCrs(layer.crs())
        canvas.setLayers([layer])
        canvas.setExtent(extent)
        label = QLabel(title, widget)
        label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        grid.addWidget(canvas, 0, column)
        grid.addWidget(label, 1, column)
        canvases.append(canvas)
    return widget, canvases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs"), help="folder for dialog.png and result.png")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsRectangle

    app = QgsApplication([], True)
    app.initQgis()
    from qgis.gui import QgsMapCanvas

    from internal_sr.ui.dialog import SuperResolveDialog

    work = tempfile.mkdtemp(prefix="internal_sr_screens_")
    source = georeferenced_10m(os.path.join(work, "S2_T33UUB_10m.tif"))
    layer = QgsProject.instance().addMapLayer(QgsRasterLayer(source, "S2_T33UUB_10m", "gdal"))
    col, row, width, height = WINDOW
    x0, y0 = layer.extent().xMinimum(), layer.extent().yMaximum()
    area = QgsRectangle(x0 + 10 * col, y0 - 10 * (row + height), x0 + 10 * (col + width), y0 - 10 * row)

    canvas = QgsMapCanvas()  # the extent box's "Map Canvas Extent" and "Draw on Canvas" buttons need one
    canvas.setDestinationCrs(layer.crs())
    canvas.setLayers([layer])
    canvas.setExtent(area)
    dialog = SuperResolveDialog()
    dialog.extent_box.setMapCanvas(canvas)
    dialog.layer_combo.setLayer(layer)
    dialog.method_combo.setCurrentIndex(dialog.method_combo.findData("dip"))
    dialog.scale_spin.setValue(2)
    dialog.quality_combo.setCurrentIndex(dialog.quality_combo.findData("fast"))
    dialog.device_combo.setCurrentText("auto")
    dialog.extent_box.setChecked(True)
    dialog.extent_box.setOutputExtentFromUser(area, layer.crs())
    dialog.show()
    settle(app)
    dialog.resize(620, dialog.sizeHint().height())
    settle(app)
    dialog.grab().save(os.path.join(args.out, "dialog.png"))

    task = dialog.build_task()
    start = time.perf_counter()
    task.finished(task.run())  # the task manager's calls, in order, on this thread
    if task.layer is None:
        print(f"the run failed: {task.error}", file=sys.stderr)
        return 1
    print(f"{task.layer_name}: {time.perf_counter() - start:.0f} s on {task.result.device}")
    dialog.hide()

    widget, canvases = side_by_side(
        [layer, task.layer], area,
        ["Input: Sentinel-2 B4/B3/B2, 10 m", f"{task.layer_name}: 5 m, styled like the input"], 360,
    )
    widget.show()
    for map_canvas in canvases:
        map_canvas.refresh()
    settle(app, 1.0)
    for map_canvas in canvases:
        map_canvas.waitWhileRendering()
    settle(app, 0.5)
    widget.grab().save(os.path.join(args.out, "result.png"))
    for name in ("dialog.png", "result.png"):
        print(f"{os.path.join(args.out, name)}: {os.path.getsize(os.path.join(args.out, name)) / 1e3:.0f} kB")
    for item in (widget, dialog, canvas):  # widgets go before QGIS itself
        item.deleteLater()
    QgsProject.instance().clear()
    settle(app, 0.2)
    app.exitQgis()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
