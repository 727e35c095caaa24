"""The residual recovery networks: DCTLink's CPU-sized network and the paper's DnCNN baseline.

Both follow the receiver's input contract (cloud_receiver/recovery/network.py): ``image``
``[N, 3, H, W]`` in [0, 1] and ``condition`` ``[N, 6, H, W]``; both return the image plus a
predicted residual, so an untrained network starts as the identity of the classical image.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGE_CHANNELS = 3
CONDITION_CHANNELS = 6


class ResidualBlock(nn.Module):
    """conv-ReLU-conv plus the input: the EDSR block, without batch norm (it hurts restoration)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)  # type: ignore[no-any-return]  # nn.Module call is untyped


def _zero(conv: nn.Module) -> None:
    """Zero a convolution's weights and bias: a residual branch ending in it adds nothing."""
    assert isinstance(conv, nn.Conv2d)
    assert conv.bias is not None
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()


class DctLinkNet(nn.Module):
    """A two-scale residual network that does its heavy work at a quarter of the resolution.

    Pixel-unshuffle by 2 turns each 2x2 pixel group (image and conditioning) into channels, so
    an 8x8 coding block becomes 4x4 positions at half resolution and 2x2 at quarter resolution:
    the deep residual blocks run on 1/16 of the pixels, with a receptive field of about 70 image
    pixels (several blocks on each side) for the ringing and blocking that dropped coefficients
    leave. A shallow half-resolution path joins back in before pixel-shuffle, so edges keep
    their detail.
    """

    def __init__(self, half_width: int = 32, width: int = 64, blocks: int = 6) -> None:
        super().__init__()
        self.config = {"half_width": half_width, "width": width, "blocks": blocks}
        inputs = 4 * (IMAGE_CHANNELS + CONDITION_CHANNELS)
        self.unshuffle = nn.PixelUnshuffle(2)
        self.head = nn.Sequential(
            nn.Conv2d(inputs, half_width, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.down = nn.Sequential(
            nn.Conv2d(half_width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)
        )
        self.body = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.up = nn.Sequential(nn.Conv2d(width, 4 * half_width, 1), nn.PixelShuffle(2))
        self.tail = nn.Sequential(
            nn.Conv2d(half_width, half_width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(half_width, 4 * IMAGE_CHANNELS, 3, padding=1),
            nn.PixelShuffle(2),
        )
        # Start exactly at the identity (issue 15): a zero residual returns the classical image,
        # so training can only move away from it where that lowers the error. The last layer
        # still gets gradients from the first step, and through it every other layer.
        _zero(self.tail[2])

    def load_grown(self, state: dict[str, Tensor]) -> list[str]:
        """Load the weights of a network with fewer residual blocks; new blocks start as identity.

        Every tensor of ``state`` must fit this network exactly; the blocks it lacks get a zero
        last convolution, so the grown network computes exactly what ``state``'s did and
        training starts from there. Returns the names of the parameters ``state`` lacked.
        """
        own = self.state_dict()
        misfits = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        if misfits:
            raise ValueError(f"not a smaller network of this shape: {misfits[:3]} do not fit")
        self.load_state_dict(state, strict=False)
        new = [k for k in own if k not in state]
        for index, block in enumerate(self.body):
            if any(k.startswith(f"body.{index}.") for k in new):
                assert isinstance(block, ResidualBlock)
                _zero(block.body[2])
        return new

    def forward(self, image: Tensor, condition: Tensor) -> Tensor:
        half = self.head(self.unshuffle(torch.cat([image, condition], dim=1)))
        deep = self.body(self.down(half))
        residual = self.tail(half + self.up(deep))
        return image + residual  # type: ignore[no-any-return]


class DnCNN(nn.Module):
    """Zhang et al.'s DnCNN as Qiu et al. used it: depth 17, 64 filters, batch norm, residual.

    It takes the same inputs as :class:`DctLinkNet` (image and conditioning, concatenated), so
    the comparison is of architectures, not of what each network is told.
    """

    def __init__(self, depth: int = 17, width: int = 64) -> None:
        super().__init__()
        self.config = {"depth": depth, "width": width}
        layers: list[nn.Module] = [
            nn.Conv2d(IMAGE_CHANNELS + CONDITION_CHANNELS, width, 3, padding=1),
            nn.ReLU(inplace=True),
        ]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(width, IMAGE_CHANNELS, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, image: Tensor, condition: Tensor) -> Tensor:
        return image + self.body(torch.cat([image, condition], dim=1))  # type: ignore[no-any-return]


ARCHITECTURES: dict[str, type[nn.Module]] = {"dctlink": DctLinkNet, "dncnn": DnCNN}


def build(name: str, config: dict[str, int] | None = None) -> nn.Module:
    """The network called ``name`` in :data:`ARCHITECTURES`, with its default or given sizes."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](**(config or {}))


def multiply_adds(model: nn.Module, height: int = 512, width: int = 768) -> int:
    """Multiply-adds of one forward pass over a ``height`` x ``width`` image (convolutions only).

    Counted from the shapes each convolution actually sees, via forward hooks; batch norm,
    ReLU and the shuffles add no multiplies worth counting (under 0.1 % here).
    """
    total = 0

    def count(module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        per_output = kh * kw * module.in_channels // module.groups
        total += output.numel() * per_output

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()
            model(
                torch.zeros(1, IMAGE_CHANNELS, height, width),
                torch.zeros(1, CONDITION_CHANNELS, height, width),
            )
    finally:
        for hook in hooks:
            hook.remove()
    return total


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
