"""The networks: size budgets, the identity start, any image size."""

from __future__ import annotations

import pytest
import torch

from models.architecture import DctLinkNet, DnCNN, build, multiply_adds, parameters


def test_dctlink_fits_one_twentieth_of_the_papers_dncnn() -> None:
    ours, paper = multiply_adds(DctLinkNet()), multiply_adds(DnCNN())
    assert ours <= 11e9  # issue 6: at most 11 G multiply-adds for a 768x512 image
    assert paper >= 20 * ours
    # The paper's figure: about 0.55 M multiply-adds per pixel.
    assert paper / (768 * 512) == pytest.approx(0.56e6, rel=0.02)


def test_multiply_adds_count_what_each_convolution_computes() -> None:
    model = DnCNN(depth=3, width=4)
    # 9->4, 4->4 and 4->3 channels, 3x3 kernels, at every one of 16x8 pixels.
    assert multiply_adds(model, 16, 8) == 16 * 8 * 9 * (9 * 4 + 4 * 4 + 4 * 3)
    assert parameters(model) == 9 * 9 * 4 + 4 + 9 * 4 * 4 + 2 * 4 + 9 * 4 * 3 + 3


def test_untrained_dctlink_stays_close_to_the_classical_image() -> None:
    # A scaled-down output layer: training starts near "change nothing", not from noise.
    torch.manual_seed(0)
    image, condition = torch.rand(1, 3, 24, 40), torch.rand(1, 6, 24, 40)
    with torch.no_grad():
        residual = DctLinkNet().eval()(image, condition) - image
    assert 0 < float(residual.abs().max()) < 0.05


@pytest.mark.parametrize("name", ["dctlink", "dncnn"])
@pytest.mark.parametrize(("height", "width"), [(8, 8), (40, 56), (64, 24)])
def test_networks_take_any_multiple_of_eight(name: str, height: int, width: int) -> None:
    model = build(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, height, width), torch.rand(2, 6, height, width))
    assert out.shape == (2, 3, height, width)


def test_unknown_architectures_are_named() -> None:
    with pytest.raises(ValueError, match="dctlink"):
        build("unet")
