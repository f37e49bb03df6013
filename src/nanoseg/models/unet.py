"""The classic U-Net as PaddleSeg builds it (Ronneberger et al. 2015).

Four down stages (max-pool + two 3x3 conv-BN-ReLU), four up stages (bilinear
upsampling to the skip's size, concatenation, two conv-BN-ReLU), 64 base
channels; no pretrained encoder. ``base_channels=16`` gives ``unet-small``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 64):
        super().__init__()
        c = base_channels
        self.stem = double_conv(in_channels, c)
        downs = [(c, 2 * c), (2 * c, 4 * c), (4 * c, 8 * c), (8 * c, 8 * c)]
        self.down = nn.ModuleList(double_conv(a, b) for a, b in downs)
        ups = [(16 * c, 4 * c), (8 * c, 2 * c), (4 * c, c), (2 * c, c)]
        self.up = nn.ModuleList(double_conv(a, b) for a, b in ups)
        self.head = nn.Conv2d(c, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([skip, y], dim=1))
        return self.head(y)
