"""The universal matcher network: backbone -> coarse transformer -> coarse matching -> fine.

:class:`UniversalMatcherNet` holds only tensors-in / tensors-out stages and returns frozen
value objects; it never mutates a shared dict. Supervision and losses live in ``training/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xgeo.matcher.backbone import RepVGGBackbone
from xgeo.matcher.coarse import coarse_matches, dual_softmax
from xgeo.matcher.config import MatcherConfig
from xgeo.matcher.fine import FineFPN, refine
from xgeo.matcher.transformer import CoarseTransformer

__all__ = ["Features", "RawMatches", "UniversalMatcherNet", "standardize"]


@dataclass(frozen=True)
class Features:
    """Both images' features after the transformer.

    Attributes:
        coarse0: ``(B, L0, C)`` tokens of image 0 (``L0 = H0/8 * W0/8``, row-major).
        coarse1: ``(B, L1, C)``.
        fine0: ``(B, Cf, H0/2, W0/2)``.
        fine1: ``(B, Cf, H1/2, W1/2)``.
        hw0: coarse grid ``(H0/8, W0/8)``.
        hw1: coarse grid ``(H1/8, W1/8)``.
    """

    coarse0: torch.Tensor
    coarse1: torch.Tensor
    fine0: torch.Tensor
    fine1: torch.Tensor
    hw0: tuple[int, int]
    hw1: tuple[int, int]


@dataclass(frozen=True)
class RawMatches:
    """Matches in network-input pixels.

    Attributes:
        b_ids: ``(M,)`` batch index.
        points0: ``(M, 2)`` ``(x, y)`` in input 0.
        points1: ``(M, 2)`` ``(x, y)`` in input 1.
        confidence: ``(M,)`` coarse dual-softmax confidence.
    """

    b_ids: torch.Tensor
    points0: torch.Tensor
    points1: torch.Tensor
    confidence: torch.Tensor


def standardize(img: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Per-image zero mean, unit variance.

    Args:
        img: ``(B, 1, H, W)``.

    Returns:
        ``(B, 1, H, W)``.
    """
    mu = img.mean(dim=(1, 2, 3), keepdim=True)
    sd = img.std(dim=(1, 2, 3), keepdim=True)
    return (img - mu) / (sd + eps)


class UniversalMatcherNet(nn.Module):
    """Detector-free coarse-to-fine matcher (EfficientLoFTR family).

    Args:
        cfg: architecture.
    """

    def __init__(self, cfg: MatcherConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = RepVGGBackbone(cfg.backbone_dims, cfg.backbone_depths)
        self.transformer = CoarseTransformer(
            cfg.d_model, cfg.nhead, cfg.layer_names, cfg.agg, cfg.rope_base
        )
        self.fpn = FineFPN(cfg.backbone_dims, cfg.fine_dim)
        self.fine_scale = nn.Parameter(torch.tensor(4.0))

    def fuse(self) -> UniversalMatcherNet:
        """Reparameterise the backbone for inference (call after loading weights)."""
        self.backbone.fuse()
        return self

    def encode(self, img0: torch.Tensor, img1: torch.Tensor, shared0: bool = False) -> Features:
        """Run backbone, transformer and FPN.

        Args:
            img0: ``(B, 1, H0, W0)`` grayscale, ``H0, W0`` multiples of 8.
            img1: ``(B, 1, H1, W1)``.
            shared0: every ``img0`` of the batch is the same image (orientation hypotheses of
                image 1): its backbone runs once.

        Returns:
            :class:`Features`.
        """
        img0, img1 = standardize(img0), standardize(img1)
        b = img0.shape[0]
        if shared0 and b > 1:
            if img0.shape[1:] == img1.shape[1:]:
                feats = self.backbone(torch.cat([img0[:1], img1], 0))
                f0, f1 = [f[:1] for f in feats], [f[1:] for f in feats]
            else:
                f0, f1 = self.backbone(img0[:1]), self.backbone(img1)
            x2_0, x4_0, x8_0 = (f.expand(b, -1, -1, -1).contiguous() for f in f0)
            x2_1, x4_1, x8_1 = f1
        elif img0.shape == img1.shape:
            a2, a4, a8 = self.backbone(torch.cat([img0, img1], 0))
            (x2_0, x2_1), (x4_0, x4_1), (x8_0, x8_1) = a2.chunk(2), a4.chunk(2), a8.chunk(2)
        else:
            x2_0, x4_0, x8_0 = self.backbone(img0)
            x2_1, x4_1, x8_1 = self.backbone(img1)
        t0, t1 = self.transformer(x8_0, x8_1)
        if t0.shape == t1.shape:
            f = self.fpn(torch.cat([x2_0, x2_1]), torch.cat([x4_0, x4_1]), torch.cat([t0, t1]))
            fine0, fine1 = f.chunk(2)
        else:
            fine0, fine1 = self.fpn(x2_0, x4_0, t0), self.fpn(x2_1, x4_1, t1)
        return Features(
            coarse0=t0.flatten(2).transpose(1, 2),
            coarse1=t1.flatten(2).transpose(1, 2),
            fine0=fine0,
            fine1=fine1,
            hw0=(t0.shape[2], t0.shape[3]),
            hw1=(t1.shape[2], t1.shape[3]),
        )

    def confidence_matrix(
        self, feats: Features, mask0: torch.Tensor | None = None, mask1: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Full dual-softmax matrix (training).

        Returns:
            ``(B, L0, L1)`` float32.
        """
        return dual_softmax(feats.coarse0, feats.coarse1, self.cfg.temperature, mask0, mask1)

    def refine(
        self, feats: Features, b_ids: torch.Tensor, i_ids: torch.Tensor, j_ids: torch.Tensor,
        local_radius: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fine refinement of coarse matches; see :func:`xgeo.matcher.fine.refine`.

        Returns:
            ``p0 (M, 2)``, ``p1 (M, 2)``, ``prob (M, W*W)``.
        """
        return refine(
            feats.fine0, feats.fine1, b_ids, i_ids, j_ids, feats.hw0[1], feats.hw1[1],
            self.cfg.fine_window, self.fine_scale, local_radius,
        )

    @torch.no_grad()
    def match(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        threshold: float,
        mask0: torch.Tensor | None = None,
        mask1: torch.Tensor | None = None,
        fine_local: int = 0,
        shared0: bool = False,
    ) -> RawMatches:
        """Inference: coarse mutual matches above ``threshold``, refined to sub-pixel.

        Args:
            img0: ``(B, 1, H0, W0)`` in ``[0, 1]``, multiples of 8.
            img1: ``(B, 1, H1, W1)``.
            threshold: coarse confidence threshold.
            mask0: optional bool ``(B, L0)`` valid coarse cells of image 0.
            mask1: optional bool ``(B, L1)``.
            fine_local: fine refinement neighbourhood radius (0 = whole window, as trained).
            shared0: all ``img0`` are one image (see :meth:`encode`).

        Under autocast only the encoder runs in reduced precision: coarse scores and the
        sub-pixel readout are computed in float32.

        Returns:
            :class:`RawMatches` in input pixels.
        """
        feats = self.encode(img0, img1, shared0)
        b_ids, i_ids, j_ids, conf = coarse_matches(
            feats.coarse0, feats.coarse1, self.cfg.temperature, threshold, mask0, mask1
        )
        with torch.autocast(img0.device.type, enabled=False):  # sub-pixel readout in float32
            p0, p1, _ = self.refine(feats, b_ids, i_ids, j_ids, fine_local)
        return RawMatches(b_ids, p0, p1, conf)
