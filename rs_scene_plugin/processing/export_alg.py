"""rs_scene:exportchips — tiles under labelled polygons as a folder-per-class training dataset."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ..core.export import export_chips
from .base import RSSceneAlgorithm


class ExportChipsAlgorithm(RSSceneAlgorithm):
    INPUT, LABELS, CLASS_FIELD, TILE_SIZE, OUTPUT = "INPUT", "LABELS", "CLASS_FIELD", "TILE_SIZE", "OUTPUT"

    def name(self) -> str:
        return "exportchips"

    def displayName(self) -> str:
        return "Export training chips"

    def shortHelpString(self) -> str:
        return ("Writes every whole tile of TILE_SIZE raster pixels that lies inside a labelled polygon to "
                "OUTPUT/<class>/ as GeoTIFF: a folder-per-class dataset for training. Does not need the service.")

    def initAlgorithm(self, config: Any = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer"))
        self.addParameter(QgsProcessingParameterFeatureSource(self.LABELS, "Labelled polygons",
                                                              [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterField(self.CLASS_FIELD, "Class field",
                                                      parentLayerParameterName=self.LABELS))
        self.addParameter(QgsProcessingParameterNumber(self.TILE_SIZE, "Chip size (raster pixels)",
                                                       QgsProcessingParameterNumber.Integer, 64, minValue=1))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, "Output folder"))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        raster = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        labels = self.parameterAsVectorLayer(parameters, self.LABELS, context)
        if raster is None or labels is None:
            raise QgsProcessingException("INPUT must be a raster layer and LABELS a polygon layer")
        out = self.parameterAsString(parameters, self.OUTPUT, context)
        try:
            counts = export_chips(raster, labels, self.parameterAsString(parameters, self.CLASS_FIELD, context),
                                  out, self.parameterAsInt(parameters, self.TILE_SIZE, context),
                                  feedback.setProgress, feedback.isCanceled)
        except InterruptedError:
            feedback.reportError("Cancelled: no chips were written.")
            return {}
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
        return {self.OUTPUT: out, "CHIPS": sum(counts.values()), "CLASS_COUNTS": counts}
