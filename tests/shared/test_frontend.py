"""The JPEG front end: libjpeg's tables, JFIF colour, the orthonormal DCT, MCU padding."""

from __future__ import annotations

import io
import struct

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from shared.codec import Decoded, Layout, Profile, Retention, decode, encode
from shared.codec.coefficients import plane_blocks
from shared.codec.frontend import analyse, channel_tables
from shared.codec.quantisation import nearest_quality, standard_tables
from shared.codec.transform import DCT_2D_ZIGZAG, forward_dct, inverse_dct
from shared.codec.zigzag import ZIGZAG

# ITU-T T.81 figure A.6 as libjpeg writes it (``jpeg_natural_order``): the natural (row-major)
# index of the i-th coefficient in zigzag order. Written out here so the test does not lean
# on the codec's own zigzag to read the JPEG file.
JPEG_NATURAL_ORDER = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip

PILLOW_QUALITIES = (1, 5, 10, 25, 50, 75, 90, 95, 100)


def _natural_from_zigzag(zigzag: list[int]) -> npt.NDArray[np.int64]:
    natural = np.zeros(64, dtype=np.int64)
    natural[list(JPEG_NATURAL_ORDER)] = zigzag
    return natural.reshape(8, 8)


def _dqt_tables(jpeg: bytes) -> dict[int, npt.NDArray[np.int64]]:
    """The quantisation tables of a baseline JPEG's DQT segments, in natural order."""
    tables: dict[int, npt.NDArray[np.int64]] = {}
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg):
        marker, length = struct.unpack_from(">HH", jpeg, pos)
        if marker == 0xFFDA:  # start of scan: no DQT after this in a baseline file
            break
        if marker == 0xFFDB:
            seg = pos + 4
            while seg < pos + 2 + length:
                precision, table_id = jpeg[seg] >> 4, jpeg[seg] & 15
                fmt = ">64H" if precision else "64B"
                values = list(struct.unpack_from(fmt, jpeg, seg + 1))
                tables[table_id] = _natural_from_zigzag(values)
                seg += 1 + (128 if precision else 64)
        pos += 2 + length
    return tables


def _pillow_jpeg(quality: int) -> bytes:
    gradient = np.linspace(0, 255, 16 * 16 * 3).astype(np.uint8).reshape(16, 16, 3)
    out = io.BytesIO()
    Image.fromarray(gradient).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _pillow_tables_natural(
    jpeg: bytes, from_file: dict[int, npt.NDArray[np.int64]]
) -> list[npt.NDArray[np.int64]]:
    """Pillow's ``quantization`` attribute in natural order, whichever order this Pillow uses.

    Pillow 8.3 switched the attribute from file (zigzag) order to natural order; the table
    parsed from the file itself tells which one we got.
    """
    with Image.open(io.BytesIO(jpeg)) as image:
        reported: dict[int, list[int]] | None = getattr(image, "quantization", None)
    assert reported is not None
    out = []
    for table_id, values in sorted(reported.items()):
        as_natural = np.array(values, dtype=np.int64).reshape(8, 8)
        as_zigzag = _natural_from_zigzag(list(values))
        if np.array_equal(as_natural, from_file[table_id]):
            out.append(as_natural)
        else:
            assert np.array_equal(as_zigzag, from_file[table_id])
            out.append(as_zigzag)
    return out


class TestQuantisationTables:
    def test_our_zigzag_is_the_jpeg_zigzag(self) -> None:
        assert tuple(int(i) for i in ZIGZAG) == JPEG_NATURAL_ORDER

    @pytest.mark.parametrize("quality", PILLOW_QUALITIES)
    def test_standard_tables_equal_what_libjpeg_writes_through_pillow(self, quality: int) -> None:
        jpeg = _pillow_jpeg(quality)
        from_file = _dqt_tables(jpeg)
        luma, chroma = standard_tables(quality)

        assert sorted(from_file) == [0, 1]
        assert np.array_equal(luma, from_file[0])
        assert np.array_equal(chroma, from_file[1])
        pillow_luma, pillow_chroma = _pillow_tables_natural(jpeg, from_file)
        assert np.array_equal(luma, pillow_luma)
        assert np.array_equal(chroma, pillow_chroma)

    def test_tables_are_uint16_natural_order_8x8_within_baseline_range(self) -> None:
        for quality in range(1, 101):
            for table in standard_tables(quality):
                assert table.shape == (8, 8)
                assert table.dtype == np.uint16
                assert int(table.min()) >= 1
                assert int(table.max()) <= 255

    def test_quality_50_is_annex_k_unscaled(self) -> None:
        luma, chroma = standard_tables(50)
        assert luma[0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]
        assert chroma[0].tolist() == [17, 18, 24, 47, 99, 99, 99, 99]

    def test_quality_100_is_all_ones(self) -> None:
        for table in standard_tables(100):
            assert (table == 1).all()

    def test_profile_uses_standard_tables_unless_custom_ones_are_given(self) -> None:
        luma, chroma = standard_tables(75)
        got = Profile.lowpass(75).quantisation_tables()
        assert np.array_equal(got[0], luma)
        assert np.array_equal(got[1], chroma)
        custom = (tuple(range(1, 65)), tuple(range(300, 364)))
        got = Profile.lowpass(75, tables=custom).quantisation_tables()
        assert got[0].reshape(-1).tolist() == list(range(1, 65))
        assert got[1].reshape(-1).tolist() == list(range(300, 364))


def _flat_patches(colours: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """One flat 8x8 block per colour, 32 blocks to a row."""
    rows = len(colours) // 32
    grid = colours[: rows * 32].reshape(rows, 32, 3)
    return np.repeat(np.repeat(grid, 8, axis=0), 8, axis=1)


class TestColourTransform:
    """Through the public codec: a flat block carries only its DC, which unit steps keep to
    1/16 of a level, so what comes back measures the colour conversion both ways."""

    def test_flat_colours_survive_444_at_unit_steps_within_one_level(self) -> None:
        rng = np.random.default_rng(11)
        corners = np.array(
            [[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)], dtype=np.uint8
        )
        colours = np.concatenate([corners, rng.integers(0, 256, (2048 - 8, 3), dtype=np.uint8)])
        pixels = _flat_patches(colours)
        unit = ((1,) * 64, (1,) * 64)

        back = decode(encode(pixels, Profile.lossless(tables=unit, layout=Layout.YCBCR444)))

        error = np.abs(back.to_rgb().astype(np.int16) - pixels.astype(np.int16))
        assert int(error.max()) <= 1

    def test_gray_levels_survive_at_unit_steps_exactly(self) -> None:
        levels = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(256, 3)
        pixels = _flat_patches(levels)[:, :, 0]
        unit = ((1,) * 64, (1,) * 64)

        back = decode(encode(pixels, Profile.lossless(tables=unit))).to_rgb()

        assert np.array_equal(back, pixels)


class TestDct:
    def test_basis_is_orthonormal(self) -> None:
        gram = DCT_2D_ZIGZAG.astype(np.float64) @ DCT_2D_ZIGZAG.T.astype(np.float64)
        assert np.abs(gram - np.eye(64)).max() < 1e-3

    def test_forward_then_inverse_is_the_identity(self) -> None:
        rng = np.random.default_rng(20240501)
        blocks = rng.uniform(-128, 128, size=(2000, 64)).astype(np.float32)
        assert np.abs(inverse_dct(forward_dct(blocks)) - blocks).max() < 1e-3

    def test_dc_of_a_flat_block_is_eight_times_its_level(self) -> None:
        block = np.full((1, 64), 10.0, dtype=np.float32)
        coefficients = forward_dct(block)
        assert coefficients[0, 0] == pytest.approx(80.0, abs=1e-3)
        assert np.abs(coefficients[0, 1:]).max() < 1e-3

    def test_truncated_transforms_compute_only_the_leading_bands(self) -> None:
        rng = np.random.default_rng(7)
        blocks = rng.uniform(-128, 128, size=(50, 64)).astype(np.float32)
        full = forward_dct(blocks)
        np.testing.assert_allclose(forward_dct(blocks, 10), full[:, :10], atol=1e-3)
        padded = np.concatenate([full[:, :10], np.zeros((50, 54), np.float32)], axis=1)
        np.testing.assert_allclose(inverse_dct(full[:, :10]), inverse_dct(padded), atol=1e-3)


def _odd_image(height: int, width: int, colour: bool) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(height * 1000 + width)
    shape = (height, width, 3) if colour else (height, width)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _pad_edges(pixels: npt.NDArray[np.uint8], multiple: int) -> npt.NDArray[np.uint8]:
    h, w = pixels.shape[:2]
    pad = ((0, -h % multiple), (0, -w % multiple)) + ((0, 0),) * (pixels.ndim - 2)
    return np.pad(pixels, pad, mode="edge")


ODD_SIZES = ((1, 1), (7, 9), (15, 17), (17, 31), (33, 8), (8, 23))
LAYOUT_MCU = ((Layout.GRAY, 8), (Layout.YCBCR444, 8), (Layout.YCBCR420, 16))


def _retention(layout: Layout) -> tuple[Retention, ...]:
    return (Retention(64),) * layout.channels


class TestMcuPadding:
    @pytest.mark.parametrize(("height", "width"), ODD_SIZES)
    @pytest.mark.parametrize(("layout", "mcu"), LAYOUT_MCU)
    def test_planes_cover_the_image_rounded_up_to_whole_mcus(
        self, height: int, width: int, layout: Layout, mcu: int
    ) -> None:
        pixels = _odd_image(height, width, colour=True)
        tables = channel_tables(layout, *standard_tables(90))
        coefficients = analyse(pixels, layout, tables, _retention(layout))

        luma_blocks = (-(-height // mcu) * mcu // 8, -(-width // mcu) * mcu // 8)
        assert coefficients.channels[0].shape == (*luma_blocks, 64)
        assert [c.shape[:2] for c in coefficients.channels] == plane_blocks(width, height, layout)
        assert (coefficients.width, coefficients.height) == (width, height)

    @pytest.mark.parametrize(("height", "width"), ODD_SIZES)
    @pytest.mark.parametrize(("layout", "mcu"), LAYOUT_MCU)
    def test_padding_replicates_the_edge_pixels(
        self, height: int, width: int, layout: Layout, mcu: int
    ) -> None:
        pixels = _odd_image(height, width, colour=layout is not Layout.GRAY)
        tables = channel_tables(layout, *standard_tables(90))
        odd = analyse(pixels, layout, tables, _retention(layout))
        padded = analyse(_pad_edges(pixels, mcu), layout, tables, _retention(layout))

        for ours, theirs in zip(odd.channels, padded.channels, strict=True):
            assert np.array_equal(ours, theirs)

    @pytest.mark.parametrize(("height", "width"), ODD_SIZES)
    @pytest.mark.parametrize(("layout", "mcu"), LAYOUT_MCU)
    def test_reconstruction_is_cropped_back_to_the_image_size(
        self, height: int, width: int, layout: Layout, mcu: int
    ) -> None:
        colour = layout is not Layout.GRAY
        pixels = _odd_image(height, width, colour)
        profile = Profile.lossless(95, layout=layout)
        odd: Decoded = decode(encode(pixels, profile))
        padded = decode(encode(_pad_edges(pixels, mcu), profile))

        image = odd.to_rgb()
        assert image.shape == pixels.shape
        assert np.array_equal(image, padded.to_rgb()[:height, :width])

    def test_lossless_at_quality_100_reproduces_444_pixels_closely(self) -> None:
        pixels = _odd_image(17, 31, colour=True)
        back = decode(encode(pixels, Profile.lossless(100, layout=Layout.YCBCR444))).to_rgb()
        assert int(np.abs(back.astype(np.int16) - pixels.astype(np.int16)).max()) <= 3


def test_nearest_quality_names_every_standard_table_and_a_near_one() -> None:
    assert [nearest_quality(standard_tables(q)[0]) for q in range(1, 98)] == list(range(1, 98))
    luma = standard_tables(80)[0].astype(np.int64)
    luma[0, 0] += 3  # an encoder's tweak of one step does not move the answer
    assert nearest_quality(luma) == 80
