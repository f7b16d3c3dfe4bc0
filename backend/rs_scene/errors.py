"""The one exception type users see: a clear message naming what is wrong."""


class RSSceneError(ValueError):
    """Bad input or an unusable file. The message names the file, band, field or option at fault."""
