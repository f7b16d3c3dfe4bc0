"""rs_scene:train — train (or fine-tune) a scene classifier from labelled polygons or a dataset folder."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.client import BackendError, JobCancelled
from ..core.jobs import describe, percent
from ..core.train import TrainSpec, run_training
from .base import RSSceneAlgorithm


class TrainAlgorithm(RSSceneAlgorithm):
    INPUT, LABELS, CLASS_FIELD, DATA, METHOD = "INPUT", "LABELS", "CLASS_FIELD", "DATA", "METHOD"
    OPTIONS, EPOCHS, VAL_FRACTION, BANDS, NAME, OUTPUT = "OPTIONS", "EPOCHS", "VAL_FRACTION", "BANDS", "NAME", \
        "OUTPUT_MODEL"
    TEST_FRACTION, INPUT_SCALE, NODATA, GSD, TILE_SIZE = "TEST_FRACTION", "INPUT_SCALE", "NODATA", "GSD", \
        "TILE_SIZE"

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:
        return "Train scene classifier"

    def shortHelpString(self) -> str:
        return ("Trains a model from a raster and labelled polygons (CLASS_FIELD holds the class name) or from "
                "a dataset folder. OPTIONS is a JSON object of the method's options (see the Training dialog), "
                "e.g. {\"backbone\": \"resnet18\", \"mode\": \"linear-probe\"}. With NAME and no OUTPUT_MODEL "
                "the model is installed and appears in the Classify dialog.")

    def initAlgorithm(self, config: Any = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(self.LABELS, "Labelled polygons",
                                                              [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField(self.CLASS_FIELD, "Class field", parentLayerParameterName=
                                                      self.LABELS, optional=True))
        self.addParameter(QgsProcessingParameterFile(self.DATA, "Or a dataset folder",
                                                     QgsProcessingParameterFile.Folder, optional=True))
        self.addParameter(QgsProcessingParameterString(self.METHOD, "Method", "pretrain"))
        self.addParameter(QgsProcessingParameterString(self.OPTIONS, "Method options (JSON)", "{}", optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.EPOCHS, "Epochs (0 = the method's default)",
                                                       QgsProcessingParameterNumber.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(self.VAL_FRACTION, "Validation share",
                                                       QgsProcessingParameterNumber.Double, 0.2, minValue=0,
                                                       maxValue=0.9))
        self.addParameter(QgsProcessingParameterNumber(self.TEST_FRACTION, "Held-out share (evaluated once)",
                                                       QgsProcessingParameterNumber.Double, 0.2, minValue=0,
                                                       maxValue=0.5))
        self.addParameter(QgsProcessingParameterString(
            self.BANDS, "Bands as classify takes them: the raster's band names in order (B02,B03,...) or "
            "name=band (B02=1,B03=2,...)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.INPUT_SCALE, "Input scale, divide by (0 = automatic)",
                                                       QgsProcessingParameterNumber.Double, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(self.NODATA, "Extra no-data value (every band)",
                                                       QgsProcessingParameterNumber.Double, optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.GSD, "Ground resolution, m (0 = the raster's own)",
                                                       QgsProcessingParameterNumber.Double, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(self.TILE_SIZE, "Tile size in pixels (0 = 64)",
                                                       QgsProcessingParameterNumber.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterString(self.NAME, "Model name", "my-model"))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Model file", "Model (*.pt)",
                                                                optional=True, createByDefault=False))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        try:
            options = json.loads(self.parameterAsString(parameters, self.OPTIONS, context) or "{}")
        except ValueError as exc:
            raise QgsProcessingException(f"OPTIONS is not valid JSON: {exc}") from exc
        if not isinstance(options, dict):
            raise QgsProcessingException("OPTIONS must be a JSON object, e.g. {\"backbone\": \"resnet18\"}")
        epochs = self.parameterAsInt(parameters, self.EPOCHS, context)
        if epochs:
            options["epochs"] = epochs
        labels = None
        if parameters.get(self.LABELS):
            labels = self.parameterAsVectorLayer(parameters, self.LABELS, context)
            if labels is None:
                raise QgsProcessingException("LABELS must be a polygon layer")
        spec = TrainSpec(method=self.parameterAsString(parameters, self.METHOD, context), options=options,
                         raster=self.parameterAsRasterLayer(parameters, self.INPUT, context), labels=labels,
                         class_field=self.parameterAsString(parameters, self.CLASS_FIELD, context),
                         data=self.parameterAsFile(parameters, self.DATA, context),
                         name=self.parameterAsString(parameters, self.NAME, context).strip(),
                         out=self.parameterAsFileOutput(parameters, self.OUTPUT, context),
                         val_fraction=self.parameterAsDouble(parameters, self.VAL_FRACTION, context),
                         test_fraction=self.parameterAsDouble(parameters, self.TEST_FRACTION, context),
                         bands=self.parameterAsString(parameters, self.BANDS, context).strip() or None)
        for key, name in (("input_scale", self.INPUT_SCALE), ("gsd", self.GSD)):
            setattr(spec, key, self.parameterAsDouble(parameters, name, context) or None)
        spec.tile_size = self.parameterAsInt(parameters, self.TILE_SIZE, context) or None
        if parameters.get(self.NODATA) is not None:
            spec.nodata = self.parameterAsDouble(parameters, self.NODATA, context)

        warned: list[str] = []

        def update(job: dict[str, Any]) -> None:
            feedback.setProgress(percent(job))
            feedback.setProgressText(describe(job))
            for w in (job.get("metrics") or {}).get("warnings") or []:  # the range check, before training
                if w not in warned:
                    warned.append(w)
                    feedback.reportError(w, fatalError=False)

        try:
            result = run_training(self.manager, spec, update, feedback.isCanceled)
        except JobCancelled:
            feedback.reportError("Cancelled: no model was written.")
            return {}
        except (BackendError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        metrics = result.get("metrics") or {}
        feedback.pushInfo(f"model {result['model']} written to {result['path']}")
        for m in ((result.get("card") or {}).get("metrics") or {}).values():
            if isinstance(m, dict) and "overall_accuracy" in m:
                feedback.pushInfo(f"{m['label']}: overall accuracy {m['overall_accuracy']:.1%}, balanced "
                                  f"accuracy {m['balanced_accuracy']:.1%} ({m['n']} tiles); recall "
                                  + ", ".join(f"{c} {'-' if r is None else f'{r:.0%}'}"
                                              for c, r in m["per_class"].items()))
        for w in result.get("warnings") or []:
            if w not in warned:
                feedback.reportError(w, fatalError=False)
        return {self.OUTPUT: result["path"], "MODEL": result["model"],
                "OVERALL_ACCURACY": metrics.get("overall_accuracy"),
                "BALANCED_ACCURACY": metrics.get("balanced_accuracy"), "FIGURES": metrics.get("label"),
                "WARNINGS": result.get("warnings") or [], "METRICS": metrics}
