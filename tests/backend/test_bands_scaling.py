"""Band names, band resolution against model cards, and per-band scaling by dtype and declared scale/offset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import write_raster
from rs_scene.bands import canonical_band, resolve_bands
from rs_scene.errors import RSSceneError
from rs_scene.io.raster import TileReader, band_scaling, bands_divisor, default_divisor
from rs_scene.io.tiling import Tile

S2_MODEL = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


@pytest.mark.parametrize("raw,canon", [
    ("B2", "B02"), ("b02", "B02"), ("B8", "B08"), ("B8A", "B8A"), ("b8a", "B8A"), ("B12", "B12"),
    ("Red", "red"), ("NIR", "nir"), ("r", "red"), ("Blue", "blue"),
])
def test_canonical_band(raw: str, canon: str) -> None:
    assert canonical_band(raw) == canon


def test_resolve_by_description_in_any_order() -> None:
    names = ["B12", "B11", "B8A", "B08", "B07", "B06", "B05", "B04", "B03", "B02", "B01"]
    assert resolve_bands(S2_MODEL, names) == [10, 9, 8, 7, 6, 5, 4, 11 - 8, 2, 1]


def test_resolve_rgb_from_colour_interp_and_s2_equivalents() -> None:
    assert resolve_bands(["red", "green", "blue"], ["red", "green", "blue", None]) == [1, 2, 3]
    assert resolve_bands(["red", "green", "blue"], S2_MODEL) == [3, 2, 1]


def test_option_forms() -> None:
    unnamed = [None] * 4
    assert resolve_bands(["red", "green", "blue"], unnamed, "red=3,green=2,blue=1") == [3, 2, 1]
    assert resolve_bands(["red", "green", "blue"], unnamed, "1,2,3") == [1, 2, 3]
    assert resolve_bands(["red", "green", "blue"], unnamed, "blue,green,red,nir") == [3, 2, 1]


def test_missing_bands_named_in_error() -> None:
    with pytest.raises(RSSceneError, match=r"B11, B12"):
        resolve_bands(S2_MODEL, S2_MODEL[:8])
    with pytest.raises(RSSceneError, match="band 7 does not exist"):
        resolve_bands(["red", "green", "blue"], [None] * 4, "red=7,green=2,blue=1")
    with pytest.raises(RSSceneError, match="names 2 bands but the raster has 4"):
        resolve_bands(["red", "green", "blue"], [None] * 4, "red,green")


@pytest.mark.parametrize("dtype,card_scale,expected", [
    ("uint8", 10000, 255.0), ("uint16", 10000, 10000.0), ("uint16", 255, 255.0), ("int16", 1000, 1000.0),
    ("float32", 10000, 1.0),
])
def test_default_divisor(dtype: str, card_scale: float, expected: float) -> None:
    assert default_divisor(dtype, card_scale) == expected


def test_uint16_reflectance_is_not_divided_by_255(tmp_path: Path) -> None:
    data = np.full((2, 32, 32), 2500, dtype=np.uint16)
    path = write_raster(tmp_path / "r.tif", data)
    reader = TileReader(str(path), [1, 2], 32, default_divisor("uint16", 10000), [0.0, 0.0])
    try:
        r = reader.read(Tile(0, 0, 0, 0, 32, 32))
    finally:
        reader.close()
    assert np.allclose(r.data, 0.25)
    assert r.valid_fraction == 1.0


def test_nodata_and_padding_count_as_invalid(tmp_path: Path) -> None:
    data = np.full((1, 40, 40), 100, dtype=np.uint16)
    data[:, :, :10] = 0  # a nodata strip on the left quarter
    path = write_raster(tmp_path / "n.tif", data, nodata=0)
    reader = TileReader(str(path), [1], 32, 1000.0, [0.5])
    try:
        left = reader.read(Tile(0, 0, 0, 0, 32, 32))
        edge = reader.read(Tile(0, 1, 32, 0, 32, 32))  # 8 px inside, 24 px padding
    finally:
        reader.close()
    assert left.valid_fraction == pytest.approx(22 / 32)
    assert np.allclose(left.data[0][:, :10], 0.5), "invalid pixels get the fill value, never raw zeros"
    assert np.allclose(left.data[0][:, 10:], 0.1)
    assert edge.valid_fraction == pytest.approx(8 * 32 / (32 * 32))


def _declare(path: Path, scales: list[float], offsets: list[float]) -> None:
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = scales, offsets


def test_declared_scale_and_offset_are_applied_before_the_divisor(tmp_path: Path) -> None:
    """Band 1 as Sentinel-2 L2A of baseline 04.00 stores it (raw offset -1000), band 2 with a scale as well;
    raw 0 is nodata, compared before any scaling. Joined and single reads."""
    rng = np.random.default_rng(3)
    raw = rng.integers(1000, 6000, size=(2, 64, 192), dtype=np.uint16)
    raw[:, 5:9, 70:90] = 0
    path = write_raster(tmp_path / "s.tif", raw, nodata=0)
    _declare(path, [1.0, 2.0], [-1000.0, 500.0])
    with rasterio.open(path) as ds:
        assert band_scaling(ds, [1, 2]) == ([1.0, 2.0], [-1000.0, 500.0])
        assert band_scaling(ds, [1]) == ([1.0], [-1000.0])
    want = np.stack([(raw[0] - 1000.0) / 10000.0, (raw[1] * 2.0 + 500.0) / 10000.0]).astype(np.float32)
    valid = (raw != 0).any(0)
    fill = [0.5, 0.25]
    reader = TileReader(str(path), [1, 2], 64, 10000.0, fill)
    try:
        tiles = [Tile(0, k, 64 * k, 0, 64, 64) for k in range(3)]
        buf = np.empty((3, 2, 64, 64), dtype=np.float32)
        joined = reader.read_run(tiles, out=buf)
        single = [reader.read(t) for t in tiles]
    finally:
        reader.close()
    for k, (a, b) in enumerate(zip(joined, single, strict=True)):
        part, ok = want[:, :, 64 * k : 64 * (k + 1)], valid[:, 64 * k : 64 * (k + 1)]
        for r in (a, b):
            assert np.array_equal(r.valid, ok)
            assert np.allclose(r.data[:, ok], part[:, ok], atol=1e-6)
            assert np.allclose(r.data[:, ~ok], np.asarray(fill)[:, None])
    assert not valid[5:9, 70:90].any() and joined[1].valid_fraction == pytest.approx(1 - 4 * 20 / 64**2)


def test_divisor_after_declared_scaling(tmp_path: Path) -> None:
    raw = np.full((2, 16, 16), 1500, dtype=np.uint16)
    plain = write_raster(tmp_path / "plain.tif", raw)
    offset_only = write_raster(tmp_path / "offset.tif", raw)
    _declare(offset_only, [1.0, 1.0], [-1000.0, -1000.0])
    scaled = write_raster(tmp_path / "scaled.tif", raw)
    _declare(scaled, [1e-4, 1e-4], [-0.1, -0.1])
    with rasterio.open(plain) as a, rasterio.open(offset_only) as b, rasterio.open(scaled) as c:
        assert band_scaling(a, [1, 2]) is None
        assert bands_divisor(a, [1, 2], 10000.0) == 10000.0
        assert bands_divisor(b, [1, 2], 10000.0) == 10000.0, "an offset alone leaves the values raw counts"
        assert bands_divisor(c, [1, 2], 10000.0) == 1.0, "scaled values are already reflectance"


def test_unusable_declared_scale_names_the_band(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "z.tif", np.ones((2, 8, 8), dtype=np.uint16))
    _declare(path, [1.0, 0.0], [0.0, 0.0])
    with rasterio.open(path) as ds, pytest.raises(RSSceneError, match="band 2 declares an unusable scale"):
        band_scaling(ds, [1, 2])


@pytest.mark.parametrize("out_size", [32, 48])  # native size (joined runs) and resampled reads
def test_a_nodata_value_from_the_user_masks_pixels_where_every_band_holds_it(tmp_path: Path, out_size: int) -> None:
    raw = np.full((2, 32, 96), 500, dtype=np.uint16)
    raw[:, :, :40] = 7  # missing in both bands: masked
    raw[0, :, 60:70] = 7  # one band only: real data
    path = write_raster(tmp_path / "u.tif", raw)  # no nodata declared
    reader = TileReader(str(path), [1, 2], out_size, 1000.0, [0.5, 0.5], extra_nodata=7)
    plain = TileReader(str(path), [1, 2], out_size, 1000.0, [0.5, 0.5])
    try:
        tiles = [Tile(0, k, 32 * k, 0, 32, 32) for k in range(3)]
        joined = reader.read_run(tiles, out=np.empty((3, 2, out_size, out_size), dtype=np.float32))
        single = [reader.read(t) for t in tiles]
        unmasked = [plain.read(t) for t in tiles]
    finally:
        reader.close()
        plain.close()
    f = out_size / 32
    for reads in (joined, single):
        assert reads[0].valid_fraction == 0 and np.allclose(reads[0].data, 0.5)
        assert reads[1].valid_fraction == pytest.approx(1 - round(8 * f) / out_size)  # x 32..39 missing
        assert reads[2].valid_fraction == 1.0, "a pixel missing in one band only is still data"
    assert all(r.valid_fraction == 1.0 for r in unmasked)
