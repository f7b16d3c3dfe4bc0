"""Labelled polygons: checked, reprojected to the raster's CRS and written where the service can read them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProject,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)


def class_value(value: object) -> str:
    """A class name from an attribute value; '' for NULL / empty."""
    if value is None or (hasattr(value, "isNull") and value.isNull()):
        return ""
    return str(value).strip()


def check_labels(layer: QgsVectorLayer, field: str) -> dict[str, int]:
    """Polygons per class; ValueError naming the layer/field when training could not use them."""
    if layer is None or not layer.isValid():
        raise ValueError("no valid polygon layer was given")
    if layer.geometryType() != QgsWkbTypes.PolygonGeometry:
        raise ValueError(f"layer '{layer.name()}' has no polygons (its geometry is "
                         f"{QgsWkbTypes.geometryDisplayString(layer.geometryType())})")
    if layer.fields().indexOf(field) < 0:
        names = ", ".join(layer.fields().names()) or "none"
        raise ValueError(f"layer '{layer.name()}' has no field '{field}' (its fields: {names})")
    counts: Counter = Counter()
    for f in layer.getFeatures(QgsFeatureRequest().setSubsetOfAttributes([field], layer.fields())):
        name = class_value(f[field])
        if name and f.hasGeometry():
            counts[name] += 1
    if not counts:
        raise ValueError(f"layer '{layer.name()}': no polygon has a class value in field '{field}'; "
                         "fill the field with class names first")
    return dict(counts)


def labelled_geometries(layer: QgsVectorLayer, field: str, crs: QgsCoordinateReferenceSystem
                        ) -> Iterator[tuple[str, QgsGeometry, int]]:
    """(class, geometry in ``crs``, feature id) of every polygon with a class value."""
    xform = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance())
    for f in layer.getFeatures():
        name = class_value(f[field])
        if not name or not f.hasGeometry():
            continue
        geom = QgsGeometry(f.geometry())
        if layer.crs() != crs:
            geom.transform(xform)
        yield name, geom, f.id()


def write_labels(layer: QgsVectorLayer, field: str, crs: QgsCoordinateReferenceSystem, path: str) -> str:
    """The labelled polygons (NULL classes left out) as a GeoPackage in ``crs``."""
    check_labels(layer, field)
    ids = [f.id() for f in layer.getFeatures() if class_value(f[field]) and f.hasGeometry()]
    request = QgsFeatureRequest().setFilterFids(ids)
    request.setDestinationCrs(crs, QgsProject.instance().transformContext())
    labelled = layer.materialize(request)
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName, opts.layerName = "GPKG", "labels"
    err, msg, *_ = QgsVectorFileWriter.writeAsVectorFormatV3(labelled, path,
                                                             QgsProject.instance().transformContext(), opts)
    if err != QgsVectorFileWriter.NoError:
        raise ValueError(f"cannot write the labels of layer '{layer.name()}' to {path}: {msg}")
    return path
