"""RS Scene: classify remote-sensing scenes tile by tile, with attention heatmaps, from QGIS.

Torch never loads inside QGIS: the plugin drives the ``rs-scene serve`` loopback service in its own Python.
"""


def classFactory(iface):
    from .plugin import RSScenePlugin

    return RSScenePlugin(iface)
