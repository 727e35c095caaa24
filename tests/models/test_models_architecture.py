"""The networks: size budgets, the identity start, any image size."""

from __future__ import annotations

import pytest
import torch

from models.architecture import DctLinkNet, DnCNN, build, multiply_adds, parameters


def test_dctlink_fits_the_cpu_budget() -> None:
    ours, paper = multiply_adds(DctLinkNet()), multiply_adds(DnCNN())
    assert ours <= 20e9  # issue 15: at most 20 G multiply-adds for a 768x512 image
    assert multiply_adds(DctLinkNet(blocks=8)) <= 20e9  # v3, grown from the default's six
    assert paper >= 15 * ours
    # The paper's figure: about 0.55 M multiply-adds per pixel.
    assert paper / (768 * 512) == pytest.approx(0.56e6, rel=0.02)


def test_multiply_adds_count_what_each_convolution_computes() -> None:
    model = DnCNN(depth=3, width=4)
    # 9->4, 4->4 and 4->3 channels, 3x3 kernels, at every one of 16x8 pixels.
    assert multiply_adds(model, 16, 8) == 16 * 8 * 9 * (9 * 4 + 4 * 4 + 4 * 3)
    assert parameters(model) == 9 * 9 * 4 + 4 + 9 * 4 * 4 + 2 * 4 + 9 * 4 * 3 + 3


def test_untrained_dctlink_returns_the_classical_image() -> None:
    # A zero output layer: training starts at "change nothing" and can only learn to help.
    torch.manual_seed(0)
    image, condition = torch.rand(1, 3, 24, 40), torch.rand(1, 6, 24, 40)
    model = DctLinkNet()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(image, condition), image, rtol=0, atol=0)
    # ... yet one step of training moves it: the output layer gets gradients at once.
    target = image + 0.1
    loss = torch.mean((model.train()(image, condition) - target) ** 2)
    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward untyped
    tail = model.tail[2]
    assert isinstance(tail, torch.nn.Conv2d)
    assert tail.weight.grad is not None
    assert float(tail.weight.grad.abs().max()) > 0


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


def test_a_grown_network_computes_what_the_smaller_one_did() -> None:
    # Training a trained network with more blocks starts exactly where the smaller one stood.
    torch.manual_seed(1)
    small = DctLinkNet(blocks=2)
    for parameter in small.parameters():  # trained-looking weights, the last layer included
        torch.nn.init.normal_(parameter, std=0.05)
    grown = DctLinkNet(blocks=4)
    new = grown.load_grown(small.state_dict())
    assert sorted({name.split(".")[1] for name in new}) == ["2", "3"]
    image, condition = torch.rand(1, 3, 32, 48), torch.rand(1, 6, 32, 48)
    with torch.no_grad():
        before, after = small.eval()(image, condition), grown.eval()(image, condition)
    assert float((before - image).abs().max()) > 0.01  # the small network does something
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_only_a_smaller_network_of_the_same_shape_grows() -> None:
    with pytest.raises(ValueError, match=r"body\.2"):
        DctLinkNet(blocks=2).load_grown(DctLinkNet(blocks=3).state_dict())
    with pytest.raises(ValueError, match="do not fit"):
        DctLinkNet(width=32).load_grown(DctLinkNet().state_dict())
