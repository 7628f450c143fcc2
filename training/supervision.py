"""Ground-truth correspondences at the coarse (1/8) and fine levels from an exact flow field.

The synthetic engine gives, for every pixel centre of image 0, its ``(x, y)`` in image 1
(``flow_0to1``) and whether it is valid. Coarse truth is the image-1 cell holding the image-0 cell
centre's true position, made one-to-one (per image-1 cell only the image-0 cell whose projection
lies closest to its centre is kept); fine truth is that true position itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xgeo.matcher.fine import COARSE

__all__ = ["CoarseTruth", "coarse_truth"]


@dataclass(frozen=True)
class CoarseTruth:
    """Ground-truth coarse matches of a batch.

    Attributes:
        b_ids: ``(M,)`` batch index (all valid matches).
        i_ids: ``(M,)`` image-0 cell.
        j_ids: ``(M,)`` image-1 cell.
        target1: ``(M, 2)`` true full-res ``(x, y)`` in image 1 of the image-0 cell centre.
        unique: ``(M,)`` bool, True for the one-to-one subset used by the coarse loss.
    """

    b_ids: torch.Tensor
    i_ids: torch.Tensor
    j_ids: torch.Tensor
    target1: torch.Tensor
    unique: torch.Tensor


def coarse_truth(
    flow_0to1: torch.Tensor, valid0: torch.Tensor, hw1: tuple[int, int]
) -> CoarseTruth:
    """Coarse and fine ground truth from a dense flow.

    Args:
        flow_0to1: ``(B, H0, W0, 2)`` position in image 1 of each image-0 pixel centre.
        valid0: ``(B, H0, W0)`` bool.
        hw1: ``(H1, W1)`` size of image 1 in pixels (multiples of 8).

    Returns:
        :class:`CoarseTruth`.
    """
    b, h0, w0, _ = flow_0to1.shape
    h1, w1 = hw1
    hc0, wc0 = h0 // COARSE, w0 // COARSE
    hc1, wc1 = h1 // COARSE, w1 // COARSE
    r = COARSE // 2
    # the centre of a cell is between its pixels r-1 and r: average the 2x2 flows there
    f = flow_0to1[:, : hc0 * COARSE, : wc0 * COARSE].reshape(b, hc0, COARSE, wc0, COARSE, 2)
    v = valid0[:, : hc0 * COARSE, : wc0 * COARSE].reshape(b, hc0, COARSE, wc0, COARSE)
    fc = f[:, :, r - 1 : r + 1, :, r - 1 : r + 1].mean((2, 4))  # (B, hc0, wc0, 2)
    vc = v[:, :, r - 1 : r + 1, :, r - 1 : r + 1].all(4).all(2)
    fc = fc.reshape(b, -1, 2)
    vc = vc.reshape(b, -1) & torch.isfinite(fc).all(-1)
    cell = torch.floor((fc + 0.5) / COARSE)
    inside = (cell[..., 0] >= 0) & (cell[..., 0] < wc1) & (cell[..., 1] >= 0) & (cell[..., 1] < hc1)
    ok = vc & inside
    b_ids, i_ids = ok.nonzero(as_tuple=True)
    cx, cy = cell[b_ids, i_ids, 0].long(), cell[b_ids, i_ids, 1].long()
    j_ids = cy * wc1 + cx
    target = fc[b_ids, i_ids]
    centre = torch.stack([cx, cy], -1).float() * COARSE + (COARSE - 1) / 2
    dist = (target - centre).norm(dim=-1)
    key = b_ids * (hc1 * wc1) + j_ids
    best = torch.full((b * hc1 * wc1,), float("inf"), device=dist.device)
    best = best.scatter_reduce(0, key, dist, reduce="amin")
    unique = dist <= best[key]
    # break exact ties: keep the first occurrence
    order = torch.arange(key.numel(), device=key.device)
    first = torch.full_like(best, key.numel(), dtype=torch.long)
    first = first.scatter_reduce(0, key[unique], order[unique], reduce="amin")
    unique = unique & (first[key] == order)
    return CoarseTruth(b_ids, i_ids, j_ids, target, unique)
