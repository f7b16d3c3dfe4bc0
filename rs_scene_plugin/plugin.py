"""The plugin object QGIS creates: actions (toolbar, Raster menu, raster layers' context menu), the Processing
provider, and the backend service it stops on unload."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapLayerType,
    QgsMessageLog,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .core.backend import BackendManager
from .core.settings import icon_path

MENU = "&RS Scene"


class RSScenePlugin:
    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.manager = BackendManager()
        self.provider = None
        self.actions: list[QAction] = []
        self.layer_action: QAction | None = None
        self.toolbar = None
        self.tasks: list[Any] = []  # QgsTasks must stay referenced while they run
        self.dialogs: dict = {}

    # -- QGIS hooks ------------------------------------------------------------------------------------------
    def initProcessing(self) -> None:
        from .processing.provider import RSSceneProvider

        if self.provider is None:
            self.provider = RSSceneProvider(self.manager)
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        icon = QIcon(icon_path("classify.svg"))
        self.toolbar = self.iface.addToolBar("RS Scene")
        self.toolbar.setObjectName("RSSceneToolbar")
        for text, slot, icon_file in (
            ("Classify layer…", self.show_classify, "classify.svg"),
            ("Train model…", self.show_train, "train.svg"),
            ("Export…", self.show_export, None),
            ("Backend settings…", self.show_settings, None),
            ("Install backend…", self.show_install, None),
            ("Diagnostics…", self.show_diagnostics, None),
        ):
            on_toolbar = icon_file is not None
            action = QAction(QIcon(icon_path(icon_file)) if icon_file else QIcon(), text, self.iface.mainWindow())
            action.setObjectName("rs_scene_" + text.split()[0].lower())
            action.triggered.connect(slot)
            self.iface.addPluginToRasterMenu(MENU, action)
            if on_toolbar:
                self.toolbar.addAction(action)
            self.actions.append(action)
        self.layer_action = QAction(icon, "Classify layer (RS Scene)…", self.iface.mainWindow())
        self.layer_action.triggered.connect(lambda: self.show_classify(self.iface.activeLayer()))
        self.iface.addCustomActionForLayerType(self.layer_action, "", QgsMapLayerType.RasterLayer, True)

    def unload(self) -> None:
        for task in list(self.tasks):
            try:
                task.cancel()
            except RuntimeError:
                pass
        for dialog in self.dialogs.values():
            dialog.close()
            dialog.deleteLater()
        self.dialogs.clear()
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            action.deleteLater()
        self.actions = []
        if self.layer_action is not None:
            self.iface.removeCustomActionForLayerType(self.layer_action)
            self.layer_action.deleteLater()
            self.layer_action = None
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        try:
            self.manager.stop()
        except Exception as exc:  # noqa: BLE001 -- unloading must never fail (QGIS shows a modal error)
            QgsMessageLog.logMessage(f"stopping the RS Scene service: {exc}", "RS Scene", Qgis.Warning)

    # -- actions ---------------------------------------------------------------------------------------------
    def _dialog(self, key: str, factory: Any) -> Any:
        if key not in self.dialogs:
            self.dialogs[key] = factory()
        return self.dialogs[key]

    def show_classify(self, layer: QgsRasterLayer | None = None) -> Any:
        from .gui.classify_dialog import ClassifyDialog

        dlg = self._dialog("classify", lambda: ClassifyDialog(self.iface, self.manager, self.tasks,
                                                              self.iface.mainWindow()))
        dlg.open_for(layer if isinstance(layer, QgsRasterLayer) else None)
        return dlg

    def show_train(self) -> Any:
        from .gui.train_dialog import TrainDialog

        dlg = self._dialog("train", lambda: TrainDialog(self.iface, self.manager, self.iface.mainWindow()))
        dlg.open_fresh()
        return dlg

    def show_export(self) -> Any:
        from .gui.export_dialog import ExportDialog

        dlg = self._dialog("export", lambda: ExportDialog(self.iface, self.iface.mainWindow()))
        dlg.show()
        return dlg

    def show_settings(self) -> Any:
        from .gui.settings_dialog import SettingsDialog

        dlg = SettingsDialog(self.manager, self.iface.mainWindow())
        dlg.show()
        self.dialogs["settings"] = dlg
        return dlg

    def show_install(self) -> Any:
        from .gui.install_dialog import InstallDialog

        dlg = self._dialog("install", lambda: InstallDialog(self.manager, self.iface.mainWindow()))
        dlg.show()
        return dlg

    def show_diagnostics(self) -> Any:
        from .gui.settings_dialog import DiagnosticsDialog

        dlg = DiagnosticsDialog(self.manager, self.iface.mainWindow())
        dlg.show()
        self.dialogs["diagnostics"] = dlg
        return dlg
