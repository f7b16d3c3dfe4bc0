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
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProject,
    QgsRasterLayer,
)

from ..core.classify import ClassifyJob, ClassifySpec
from ..core.client import BackendError, JobCancelled
from ..core.derive import EDGE_MODES
from ..core.fixes import PROCESSING_FIELDS, for_fields
from ..core.jobs import describe, percent
from ..core.layers import run_name
from ..core.model_list import known_models
from .base import RSSceneAlgorithm, band_option
from .styling import style_on_load

CAMS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"]
GSD_CHOICES = ["model", "native", "value"]


class ClassifyAlgorithm(RSSceneAlgorithm):
    INPUT, MODEL, MODEL_FILE, BANDS, TILE_SIZE, STRIDE = "INPUT", "MODEL", "MODEL_FILE", "BANDS", "TILE_SIZE", \
        "STRIDE"
    EXTENT, INPUT_SCALE, GSD, GSD_VALUE, NODATA, EDGE = "EXTENT", "INPUT_SCALE", "GSD", "GSD_VALUE", "NODATA", \
        "EDGE"
    CAM, HEATMAP, OUTPUT_GRID, OUTPUT_HEATMAP = "CAM", "HEATMAP", "OUTPUT_GRID", "OUTPUT_HEATMAP"

    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:
        return "Classify raster tiles"

    def shortHelpString(self) -> str:
        return ("Classifies the raster tile by tile with an installed RS Scene model and writes the tile grid "
                "(GeoPackage, styled by class) and optionally a Grad-CAM attention heatmap (GeoTIFF). BANDS: "
                "empty = match the layer's band names to the model's; or the layer's band names in order "
                "(B02,B03,...); or model_band=layer_band pairs (B02=1,B03=2,...). Tile size and stride are "
                "in model pixels (0 = the model's). GSD: the model's resolution, the layer's own (native), or "
                "GSD_VALUE metres. NODATA: a raw value that marks missing pixels (where every band holds it). "
                "EDGE: the partial last tiles shifted inside the raster (default), padded, or dropped.")

    def initAlgorithm(self, config: Any = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer", default_raster()))
        names = known_models()
        self.addParameter(QgsProcessingParameterEnum(self.MODEL, "Model", names, defaultValue=names[0],
                                                     usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterFile(self.MODEL_FILE, "Model file (.pt, instead of the list)",
                                                     extension="pt", optional=True))
        self.addParameter(QgsProcessingParameterString(self.BANDS, "Band names or mapping", optional=True))
        for key, label in ((self.TILE_SIZE, "Tile size (0 = model's)"), (self.STRIDE, "Stride (0 = tile size)")):
            self.addParameter(QgsProcessingParameterNumber(key, label, QgsProcessingParameterNumber.Integer, 0,
                                                           minValue=0))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent", optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.INPUT_SCALE, "Input scale (0 = automatic)",
                                                       QgsProcessingParameterNumber.Double, 0, minValue=0))
        self.addParameter(QgsProcessingParameterEnum(self.GSD, "GSD", GSD_CHOICES, defaultValue=GSD_CHOICES[0],
                                                     usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(self.GSD_VALUE, "GSD value (m, for GSD 'value')",
                                                       QgsProcessingParameterNumber.Double, optional=True,
                                                       minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(self.NODATA, "Extra nodata value",
                                                       QgsProcessingParameterNumber.Double, optional=True))
        self.addParameter(QgsProcessingParameterEnum(self.EDGE, "Edge tiles", list(EDGE_MODES),
                                                     defaultValue=EDGE_MODES[0], usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterBoolean(self.HEATMAP, "Attention heatmap", True))
        self.addParameter(QgsProcessingParameterEnum(self.CAM, "Heatmap method", CAMS, defaultValue=0))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT_GRID, "Tile grid",
                                                                  QgsProcessing.TypeVectorPolygon))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT_HEATMAP, "Heatmap",
                                                                  optional=True, createByDefault=True))

    def _gsd(self, parameters: dict[str, Any], context: QgsProcessingContext) -> float | str | None:
        mode = self.parameterAsEnumString(parameters, self.GSD, context) or "model"
        if mode != "value":
            return None if mode == "model" else mode
        value = self.parameterAsDouble(parameters, self.GSD_VALUE, context)
        if not value or value <= 0:
            raise QgsProcessingException("GSD is 'value': give GSD_VALUE, the metres per pixel to classify at")
        return value

    def _spec(self, parameters: dict[str, Any], context: QgsProcessingContext, layer: Any) -> ClassifySpec:
        model = self.parameterAsFile(parameters, self.MODEL_FILE, context).strip() or \
            self.parameterAsEnumString(parameters, self.MODEL, context)
        card = self.model_card(model.strip())
        nodata = parameters.get(self.NODATA)
        spec = ClassifySpec(
            model=card, bands=band_option(layer, card, self.parameterAsString(parameters, self.BANDS, context)),
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            stride=self.parameterAsInt(parameters, self.STRIDE, context) or None,
            heatmap=self.parameterAsBool(parameters, self.HEATMAP, context),
            cam=CAMS[self.parameterAsEnum(parameters, self.CAM, context)],
            input_scale=self.parameterAsDouble(parameters, self.INPUT_SCALE, context) or None,
            gsd=self._gsd(parameters, context), edge=self.parameterAsEnumString(parameters, self.EDGE, context),
            nodata="layer" if nodata in (None, "") else self.parameterAsDouble(parameters, self.NODATA, context))
        if parameters.get(self.EXTENT):
            spec.extent = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
        return spec

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("INPUT is not a raster layer")
        spec = self._spec(parameters, context, layer)
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
            raise QgsProcessingException(for_fields(str(exc), PROCESSING_FIELDS)) from exc
        feedback.pushInfo(f"{result['tiles_classified']}/{result['tiles_total']} tiles classified in "
                          f"{result['seconds']:.1f} s: {result['class_counts']}")
        for warning in result.get("warnings") or []:
            feedback.pushWarning(for_fields(warning, PROCESSING_FIELDS))
        model, classes = spec.model["name"], spec.model.get("classes", [])
        style_on_load(context, grid, classes, run_name(layer.name(), "classes", model))
        style_on_load(context, heat, classes, run_name(layer.name(), f"attention, {spec.cam}", model))
        return {self.OUTPUT_GRID: grid, self.OUTPUT_HEATMAP: heat, "TILES_TOTAL": result["tiles_total"],
                "TILES_CLASSIFIED": result["tiles_classified"], "CLASS_COUNTS": result["class_counts"]}


def default_raster() -> str | None:
    """The active layer when it is a raster, else the topmost raster of the project: the layer a user most
    likely means (the parameter used to start empty)."""
    try:
        from qgis.utils import iface
    except ImportError:
        iface = None
    active = iface.activeLayer() if iface is not None and hasattr(iface, "activeLayer") else None
    if isinstance(active, QgsRasterLayer):
        return active.id()
    for node in QgsProject.instance().layerTreeRoot().findLayers():
        if isinstance(node.layer(), QgsRasterLayer):
            return node.layer().id()
    return None
