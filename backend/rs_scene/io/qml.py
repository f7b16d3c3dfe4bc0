"""QGIS layer styles (QML) for the outputs: a categorised fill by class colour."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr


def _rgba(hex_colour: str, alpha: int = 150) -> str:
    h = hex_colour.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha}"


def _symbol(idx: str, colour: str) -> str:
    return (
        f'<symbol alpha="1" clip_to_extent="1" type="fill" force_rhr="0" name="{idx}">'
        '<layer class="SimpleFill" enabled="1" locked="0" pass="0">'
        f'<Option type="Map"><Option type="QString" name="color" value="{_rgba(colour)}"/>'
        '<Option type="QString" name="outline_color" value="35,35,35,200"/>'
        '<Option type="QString" name="outline_style" value="solid"/>'
        '<Option type="QString" name="outline_width" value="0.2"/>'
        '<Option type="QString" name="outline_width_unit" value="MM"/>'
        '<Option type="QString" name="style" value="solid"/></Option>'
        f'<prop k="color" v="{_rgba(colour)}"/><prop k="outline_color" v="35,35,35,200"/>'
        '<prop k="outline_style" v="solid"/><prop k="outline_width" v="0.2"/>'
        '<prop k="outline_width_unit" v="MM"/><prop k="style" v="solid"/>'
        "</layer></symbol>"
    )


def categorized_qml(field: str, classes: list[dict[str, str]], skipped_label: str | None = None) -> str:
    """A QGIS 3 QML categorising ``field`` by the class names, in the model card's colours."""
    cats, syms = [], []
    entries = [(c["name"], c["color"]) for c in classes]
    if skipped_label:
        entries.append((skipped_label, "#bdbdbd"))
    for i, (name, colour) in enumerate(entries):
        cats.append(f'<category render="true" symbol="{i}" value={quoteattr(name)} label={quoteattr(name)}/>')
        syms.append(_symbol(str(i), colour))
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.22.0" styleCategories="Symbology">'
        f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(field)} symbollevels="0" enableorderby="0" '
        'forceraster="0">'
        f"<categories>{''.join(cats)}</categories><symbols>{''.join(syms)}</symbols>"
        "</renderer-v2><blendMode>0</blendMode><featureBlendMode>0</featureBlendMode>"
        "<layerGeometryType>2</layerGeometryType></qgis>\n"
    )
