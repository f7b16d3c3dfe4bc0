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
        self.addParameter(QgsProcessingParameterString(self.BANDS, "Band names of the raster", optional=True))
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
                         bands=self.parameterAsString(parameters, self.BANDS, context).strip() or None)

        def update(job: dict[str, Any]) -> None:
            feedback.setProgress(percent(job))
            feedback.setProgressText(describe(job))

        try:
            result = run_training(self.manager, spec, update, feedback.isCanceled)
        except JobCancelled:
            feedback.reportError("Cancelled: no model was written.")
            return {}
        except (BackendError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        metrics = result.get("metrics") or {}
        feedback.pushInfo(f"model {result['model']} written to {result['path']}")
        return {self.OUTPUT: result["path"], "MODEL": result["model"],
                "OVERALL_ACCURACY": metrics.get("overall_accuracy"), "METRICS": metrics}
