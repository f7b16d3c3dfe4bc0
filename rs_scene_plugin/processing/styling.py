"""Processing's outputs styled like the dialog's: a layer post-processor gives the loaded tile grid its class
colours (the GeoPackage's default style, else the model card's) and the heatmap its semi-transparent
pseudocolour ramp, and names both after the run."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsVectorLayer,
)

from ..core.layers import style_grid, style_heatmap

_ALIVE: list[Any] = []  # post-processors must outlive the algorithm that set them (QGIS holds raw pointers)


class ResultStyler(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, classes: list[dict[str, str]], name: str) -> None:
        super().__init__()
        self.classes, self.name = classes, name

    def postProcessLayer(self, layer, context, feedback) -> None:
        if isinstance(layer, QgsVectorLayer):
            style_grid(layer, self.classes)
        elif isinstance(layer, QgsRasterLayer):
            style_heatmap(layer)
        layer.setName(self.name)
        layer.triggerRepaint()


def style_on_load(context: QgsProcessingContext, path: str | None, classes: list[dict[str, str]],
                  name: str) -> None:
    """Style ``path``'s layer when Processing loads it into the project (nothing when it does not)."""
    if not path or not context.willLoadLayerOnCompletion(path):
        return
    styler = ResultStyler(classes, name)
    _ALIVE.append(styler)
    del _ALIVE[:-16]
    details = context.layerToLoadOnCompletionDetails(path)
    details.name = name
    details.setPostProcessor(styler)
