"""The Processing provider ``rs_scene``: classify, train and exportchips for batch mode, the modeler and
``qgis_process run rs_scene:<name>``."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..core.backend import BackendManager
from ..core.settings import icon_path
from .classify_alg import ClassifyAlgorithm
from .export_alg import ExportChipsAlgorithm
from .train_alg import TrainAlgorithm


class RSSceneProvider(QgsProcessingProvider):
    def __init__(self, manager: BackendManager) -> None:
        super().__init__()
        self.manager = manager

    def id(self) -> str:
        return "rs_scene"

    def name(self) -> str:
        return "RS Scene"

    def icon(self) -> QIcon:
        return QIcon(icon_path())

    def loadAlgorithms(self) -> None:
        for alg in (ClassifyAlgorithm, TrainAlgorithm, ExportChipsAlgorithm):
            self.addAlgorithm(alg(self.manager))
