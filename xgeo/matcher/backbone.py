"""Reparameterisable RepVGG-style CNN backbone producing 1/2, 1/4 and 1/8 feature maps.

During training each block is ``BN(conv3x3) + BN(conv1x1) + BN(identity)``; :meth:`RepVGGBlock.fuse`
folds the three branches into one 3x3 convolution for inference (same output, one conv).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RepVGGBlock", "RepVGGBackbone", "fuse_conv_bn"]


def fuse_conv_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a BatchNorm (eval statistics) into the preceding bias-free convolution.

    Args:
        weight: conv kernel ``(Cout, Cin, k, k)``.
        bn: the BatchNorm over ``Cout`` channels.

    Returns:
        ``(weight (Cout, Cin, k, k), bias (Cout,))`` of the equivalent convolution.
    """
    std = (bn.running_var + bn.eps).sqrt()
    scale = bn.weight / std
    return weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    """3x3 conv + 1x1 conv + identity, each with BatchNorm, then ReLU.

    Args:
        cin: input channels.
        cout: output channels.
        stride: 1 or 2.

    Shapes:
        ``(B, cin, H, W) -> (B, cout, H/stride, W/stride)``.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.conv3 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn_id = nn.BatchNorm2d(cout) if (cin == cout and stride == 1) else None
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return F.relu(self.fused(x))
        y = self.bn3(self.conv3(x)) + self.bn1(self.conv1(x))
        if self.bn_id is not None:
            y = y + self.bn_id(x)
        return F.relu(y)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold all branches into one 3x3 convolution (inference only; irreversible)."""
        if self.fused is not None:
            return
        w3, b3 = fuse_conv_bn(self.conv3.weight, self.bn3)
        w1, b1 = fuse_conv_bn(self.conv1.weight, self.bn1)
        w = w3 + F.pad(w1, [1, 1, 1, 1])
        b = b3 + b1
        if self.bn_id is not None:
            eye = torch.zeros_like(w3)
            idx = torch.arange(self.cin)
            eye[idx, idx, 1, 1] = 1.0
            wi, bi = fuse_conv_bn(eye, self.bn_id)
            w, b = w + wi, b + bi
        conv = nn.Conv2d(self.cin, self.cout, 3, self.stride, 1, bias=True).to(w.device, w.dtype)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        self.fused = conv
        del self.conv3, self.bn3, self.conv1, self.bn1, self.bn_id
        self.bn_id = None


class RepVGGBackbone(nn.Module):
    """Three stride-2 stages of RepVGG blocks.

    Args:
        dims: channels at 1/2, 1/4, 1/8.
        depths: blocks per stage (the first block of each stage has stride 2).

    Shapes:
        input ``(B, 1, H, W)`` with ``H, W`` multiples of 8; outputs
        ``x2 (B, dims[0], H/2, W/2)``, ``x4 (B, dims[1], H/4, W/4)``, ``x8 (B, dims[2], H/8, W/8)``.
    """

    def __init__(self, dims: tuple[int, int, int], depths: tuple[int, int, int]) -> None:
        super().__init__()
        stages = []
        cin = 1
        for d, n in zip(dims, depths, strict=True):
            blocks = [RepVGGBlock(cin, d, 2)] + [RepVGGBlock(d, d, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = d
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x2 = self.stages[0](x)
        x4 = self.stages[1](x2)
        x8 = self.stages[2](x4)
        return x2, x4, x8

    def fuse(self) -> None:
        """Reparameterise every block into a single 3x3 convolution."""
        for m in self.modules():
            if isinstance(m, RepVGGBlock):
                m.fuse()
