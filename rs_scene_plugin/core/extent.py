"""The extent a classification covers: the whole layer, the map canvas, or the selected polygons (written to a
scratch GeoPackage in the layer's CRS that the task running the spec removes)."""

from __future__ import annotations

import tempfile
from typing import Any

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsProject,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from .classify import ClassifySpec, remove_scratch


def set_extent(spec: ClassifySpec, layer: QgsRasterLayer, choice: str, canvas: Any, polys: Any) -> None:
    """Fill ``spec.extent`` (and ``spec.mask``) for ``choice``; ValueError naming what is wrong."""
    project = QgsProject.instance()
    if choice == "Map canvas":
        xform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(), project)
        spec.extent = xform.transformBoundingBox(canvas.extent()).intersect(layer.extent())
    elif choice == "Selected polygons":
        if not isinstance(polys, QgsVectorLayer) or not polys.selectedFeatureCount():
            name = polys.name() if polys is not None else "(none)"
            raise ValueError(f"No polygons are selected in layer '{name}': select some, or choose another "
                             "extent.")
        request = QgsFeatureRequest().setFilterFids(polys.selectedFeatureIds())
        request.setDestinationCrs(layer.crs(), project.transformContext())
        selected = polys.materialize(request)
        spec.scratch = tempfile.mkdtemp(prefix="rs_scene_mask_")  # the task that runs the spec removes it
        spec.mask = f"{spec.scratch}/mask.gpkg"
        opts = QgsVectorFileWriter.SaveVectorOptions()
        opts.driverName = "GPKG"
        QgsVectorFileWriter.writeAsVectorFormatV3(selected, spec.mask, project.transformContext(), opts)
        spec.extent = selected.extent().intersect(layer.extent())
    if spec.extent is not None and (spec.extent.isEmpty() or spec.extent.width() <= 0):
        remove_scratch(spec)  # no task will run this spec
        raise ValueError(f"The chosen extent does not overlap layer '{layer.name()}'.")
