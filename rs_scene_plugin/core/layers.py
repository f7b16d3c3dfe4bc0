"""Results as map layers: the tile grid styled by class colour and the heatmap as a semi-transparent
pseudocolour layer, both placed just above the classified raster."""

from __future__ import annotations

import time
from typing import Any

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsMapLayer,
    QgsProject,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

GRID_LAYER = "tiles"
SKIPPED = "skipped"
HEAT_OPACITY = 0.85
GRID_OPACITY = 0.6  # the heatmap and the raster stay visible through the class colours


def load_grid(path: str, name: str, classes: list[dict[str, str]]) -> QgsVectorLayer:
    """The grid with the GeoPackage's default style (its layer_styles table) or, failing that, one built
    from the model card's class colours."""
    layer = QgsVectorLayer(f"{path}|layername={GRID_LAYER}", name, "ogr")
    if not layer.isValid():
        raise ValueError(f"cannot open the tile grid {path}")
    style_grid(layer, classes)
    return layer


def style_grid(layer: QgsVectorLayer, classes: list[dict[str, str]]) -> None:
    """Class colours (the GeoPackage's default style, loaded if the layer was opened without it, else the
    model card's) and the grid's opacity. For the dialog's layers and Processing's."""
    renderer = layer.renderer()
    if renderer is None or renderer.type() != "categorizedSymbol" or not renderer.categories():
        layer.loadDefaultStyle()
        renderer = layer.renderer()
    if renderer is None or renderer.type() != "categorizedSymbol" or not renderer.categories():
        layer.setRenderer(class_renderer(classes))
    layer.setOpacity(GRID_OPACITY)


def class_renderer(classes: list[dict[str, str]]) -> QgsCategorizedSymbolRenderer:
    cats = []
    for cls in [*classes, {"name": SKIPPED, "color": "#bdbdbd"}]:
        colour = QColor(cls["color"])
        colour.setAlpha(150)
        symbol = QgsFillSymbol.createSimple({"color": colour.name(QColor.HexArgb), "outline_color": "35,35,35,200",
                                             "outline_width": "0.2"})
        symbol.setColor(colour)
        cats.append(QgsRendererCategory(cls["name"], symbol, cls["name"]))
    return QgsCategorizedSymbolRenderer("class_name", cats)


#: Inferno-like stops whose alpha grows with attention: where the model did not look, the raster shows through.
HEAT_STOPS = [(0.0, (0, 0, 4, 0)), (0.35, (87, 16, 110, 90)), (0.6, (188, 55, 84, 160)),
              (0.8, (249, 142, 9, 200)), (1.0, (252, 255, 164, 230))]


def load_heatmap(path: str, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(path, name, "gdal")
    if not layer.isValid():
        raise ValueError(f"cannot open the heatmap {path}")
    style_heatmap(layer)
    return layer


def style_heatmap(layer: QgsRasterLayer) -> None:
    """A semi-transparent pseudocolour ramp over the layer's range: the raster shows where attention is low."""
    stats = layer.dataProvider().bandStatistics(1, QgsRasterBandStats.Min | QgsRasterBandStats.Max)
    lo, hi = stats.minimumValue, stats.maximumValue
    if not hi > lo:
        lo, hi = 0.0, 1.0
    fn = QgsColorRampShader(lo, hi)
    fn.setColorRampType(QgsColorRampShader.Interpolated)
    fn.setColorRampItemList([QgsColorRampShader.ColorRampItem(lo + f * (hi - lo), QColor(*rgba), f"{f:.0%}")
                             for f, rgba in HEAT_STOPS])
    shader = QgsRasterShader(lo, hi)
    shader.setRasterShaderFunction(fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    renderer.setOpacity(HEAT_OPACITY)
    layer.setRenderer(renderer)


def add_on_top(project: QgsProject, layers: list[QgsMapLayer]) -> None:
    """Add ``layers`` (bottom first) at the top of the layer tree: a new run's results above the raster and
    above every earlier run's, where the user looks."""
    root = project.layerTreeRoot()
    for layer in layers:
        project.addMapLayer(layer, False)
        root.insertLayer(0, layer)


def run_name(layer_name: str, what: str, model: str, when: float | None = None,
             project: QgsProject | None = None) -> str:
    """"aberystwyth classes (sentinel2-eurosat, 23:04:10)": runs of one layer told apart by model and time
    (and a number when two finish within one second)."""
    name = f"{layer_name} {what} ({model}, {time.strftime('%H:%M:%S', time.localtime(when))})"
    taken = {lyr.name() for lyr in (project or QgsProject.instance()).mapLayers().values()}
    n, out = 2, name
    while out in taken:
        out, n = f"{name} #{n}", n + 1
    return out


def summary(result: dict[str, Any]) -> str:
    """"36 tiles (25 classified, 11 skipped) in 11.7 s: SeaLake 32%, Industrial 28%, ..."."""
    n = max(result.get("tiles_classified", 0), 1)
    shares = ", ".join(f"{k} {v / n:.0%}" for k, v in list(result.get("class_counts", {}).items())[:6])
    return (f"{result.get('tiles_total', 0)} tiles ({result.get('tiles_classified', 0)} classified, "
            f"{result.get('tiles_skipped', 0)} skipped) in {result.get('seconds', 0):.1f} s"
            + (f": {shares}" if shares else ""))
