"""rs_scene:classify — classify a raster tile by tile; a styled tile grid and an attention heatmap."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from ..core.classify import ClassifyJob, ClassifySpec
from ..core.client import BackendError, JobCancelled
from ..core.jobs import describe, percent
from .base import RSSceneAlgorithm, band_option

CAMS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"]


class ClassifyAlgorithm(RSSceneAlgorithm):
    INPUT, MODEL, BANDS, TILE_SIZE, STRIDE, EXTENT = "INPUT", "MODEL", "BANDS", "TILE_SIZE", "STRIDE", "EXTENT"
    INPUT_SCALE, CAM, HEATMAP, OUTPUT_GRID, OUTPUT_HEATMAP = "INPUT_SCALE", "CAM", "HEATMAP", "OUTPUT_GRID", \
        "OUTPUT_HEATMAP"

    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:
        return "Classify raster tiles"

    def shortHelpString(self) -> str:
        return ("Classifies the raster tile by tile with an installed RS Scene model and writes the tile grid "
                "(GeoPackage, styled by class) and optionally a Grad-CAM attention heatmap (GeoTIFF). BANDS: "
                "empty = match the layer's band names to the model's; or the layer's band names in order "
                "(B02,B03,...); or model_band=layer_band pairs (B02=1,B03=2,...). Tile size and stride are "
                "in model pixels (0 = the model's).")

    def initAlgorithm(self, config: Any = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer"))
        self.addParameter(QgsProcessingParameterString(self.MODEL, "Model (installed name or .pt file)",
                                                       "sentinel2-eurosat"))
        self.addParameter(QgsProcessingParameterString(self.BANDS, "Band names or mapping", optional=True))
        for key, label in ((self.TILE_SIZE, "Tile size (0 = model's)"), (self.STRIDE, "Stride (0 = tile size)")):
            self.addParameter(QgsProcessingParameterNumber(key, label, QgsProcessingParameterNumber.Integer, 0,
                                                           minValue=0))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent", optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.INPUT_SCALE, "Input scale (0 = automatic)",
                                                       QgsProcessingParameterNumber.Double, 0, minValue=0))
        self.addParameter(QgsProcessingParameterBoolean(self.HEATMAP, "Attention heatmap", True))
        self.addParameter(QgsProcessingParameterEnum(self.CAM, "Heatmap method", CAMS, defaultValue=0))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT_GRID, "Tile grid",
                                                                  QgsProcessing.TypeVectorPolygon))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT_HEATMAP, "Heatmap",
                                                                  optional=True, createByDefault=True))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("INPUT is not a raster layer")
        card = self.model_card(self.parameterAsString(parameters, self.MODEL, context).strip())
        spec = ClassifySpec(
            model=card, bands=band_option(layer, card, self.parameterAsString(parameters, self.BANDS, context)),
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            stride=self.parameterAsInt(parameters, self.STRIDE, context) or None,
            heatmap=self.parameterAsBool(parameters, self.HEATMAP, context),
            cam=CAMS[self.parameterAsEnum(parameters, self.CAM, context)],
            input_scale=self.parameterAsDouble(parameters, self.INPUT_SCALE, context) or None)
        if parameters.get(self.EXTENT):
            spec.extent = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
        grid = self.parameterAsOutputLayer(parameters, self.OUTPUT_GRID, context)
        if not grid.lower().endswith(".gpkg"):
            raise QgsProcessingException(f"OUTPUT_GRID must be a GeoPackage (.gpkg), not {grid}")
        heat = self.parameterAsOutputLayer(parameters, self.OUTPUT_HEATMAP, context) if spec.heatmap else None
        if heat and not heat.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(f"OUTPUT_HEATMAP must be a GeoTIFF (.tif), not {heat}")
        job = ClassifyJob(spec, layer, grid, heat or None)

        def update(j: dict[str, Any]) -> None:
            feedback.setProgress(percent(j))
            feedback.setProgressText(describe(j))

        try:
            result = job.run(self.manager, update, feedback.isCanceled)
        except JobCancelled:
            feedback.reportError("Cancelled: nothing was written.")
            return {}
        except (BackendError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(f"{result['tiles_classified']}/{result['tiles_total']} tiles classified in "
                          f"{result['seconds']:.1f} s: {result['class_counts']}")
        for warning in result.get("warnings") or []:
            feedback.pushWarning(warning)
        return {self.OUTPUT_GRID: grid, self.OUTPUT_HEATMAP: heat, "TILES_TOTAL": result["tiles_total"],
                "TILES_CLASSIFIED": result["tiles_classified"], "CLASS_COUNTS": result["class_counts"]}
