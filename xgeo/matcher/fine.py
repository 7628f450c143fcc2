"""Fine stage: 1/2-resolution features (FPN over the backbone) and sub-pixel refinement.

For a coarse match (cell ``i`` of image 0, cell ``j`` of image 1) the point in image 0 is the
centre of cell ``i``; its fine feature is correlated with a ``W x W`` window of image-1 fine
features centred on cell ``j`` and the soft-argmax of that correlation is the sub-pixel point in
image 1. With ``W = 8`` the window spans +-7 px of the cell centre at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FineFPN", "cell_centers", "refine"]

COARSE = 8  # stride of the coarse grid
FINE = 2  # stride of the fine grid


class FineFPN(nn.Module):
    """Top-down fusion of transformed 1/8 features with backbone 1/4 and 1/2 features.

    Args:
        dims: backbone channels at 1/2, 1/4, 1/8.
        out_dim: fine feature channels ``Cf``.

    Shapes:
        ``x2 (B, d0, H/2, W/2)``, ``x4 (B, d1, H/4, W/4)``, ``x8 (B, d2, H/8, W/8)``
        -> ``(B, Cf, H/2, W/2)``.
    """

    def __init__(self, dims: tuple[int, int, int], out_dim: int) -> None:
        super().__init__()
        d0, d1, d2 = dims
        self.lat8 = nn.Conv2d(d2, d1, 1)
        self.lat4 = nn.Conv2d(d1, d1, 1)
        self.mix4 = nn.Sequential(nn.Conv2d(d1, d1, 3, padding=1), nn.GELU())
        self.up4 = nn.Conv2d(d1, out_dim, 1)
        self.lat2 = nn.Conv2d(d0, out_dim, 1)
        self.mix2 = nn.Conv2d(out_dim, out_dim, 3, padding=1)

    def forward(self, x2: torch.Tensor, x4: torch.Tensor, x8: torch.Tensor) -> torch.Tensor:
        y4 = self.lat4(x4) + F.interpolate(self.lat8(x8), size=x4.shape[2:], mode="bilinear",
                                           align_corners=False)
        y4 = self.mix4(y4)
        y2 = self.lat2(x2) + F.interpolate(self.up4(y4), size=x2.shape[2:], mode="bilinear",
                                           align_corners=False)
        return self.mix2(y2)


def cell_centers(ids: torch.Tensor, wc: int) -> torch.Tensor:
    """Full-resolution ``(x, y)`` of coarse cell centres.

    Args:
        ids: ``(M,)`` flat cell indices in a grid of width ``wc``.
        wc: coarse grid width.

    Returns:
        ``(M, 2)`` float32 pixel coordinates (pixel-centre convention).
    """
    x = (ids % wc).float() * COARSE + (COARSE - 1) / 2
    y = torch.div(ids, wc, rounding_mode="floor").float() * COARSE + (COARSE - 1) / 2
    return torch.stack([x, y], -1)


def refine(
    fine0: torch.Tensor,
    fine1: torch.Tensor,
    b_ids: torch.Tensor,
    i_ids: torch.Tensor,
    j_ids: torch.Tensor,
    wc0: int,
    wc1: int,
    window: int,
    scale: torch.Tensor,
    local_radius: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sub-pixel position in image 1 of each coarse match's image-0 cell centre.

    The position is the softmax expectation over the whole window (``local_radius=0``, as
    trained), or over the ``(2 r + 1)^2`` fine pixels around the window's most probable one
    (``local_radius=r``), which removes the whole-window expectation's pull towards the
    window centre.

    Args:
        fine0: ``(B, Cf, H0/2, W0/2)`` fine features of image 0.
        fine1: ``(B, Cf, H1/2, W1/2)`` fine features of image 1.
        b_ids: ``(M,)`` batch index of each match.
        i_ids: ``(M,)`` coarse cell in image 0.
        j_ids: ``(M,)`` coarse cell in image 1.
        wc0: coarse width of image 0.
        wc1: coarse width of image 1.
        window: side ``W`` of the search window (even), in fine pixels.
        scale: scalar learnable logit scale.
        local_radius: 0 for the whole-window expectation, else the neighbourhood radius.

    Returns:
        ``p0 (M, 2)`` full-res points in image 0, ``p1 (M, 2)`` expected full-res points in
        image 1, ``prob (M, W*W)`` the window's softmax.
    """
    m = b_ids.numel()
    cf = fine0.shape[1]
    dev = fine0.device
    if m == 0:
        z = torch.zeros(0, 2, device=dev)
        return z, z, torch.zeros(0, window * window, device=dev)
    r = COARSE // FINE  # fine pixels per coarse cell (4)
    # image-0 descriptor: mean of the 2x2 fine pixels around the cell centre
    cx0 = (i_ids % wc0) * r + r // 2
    cy0 = torch.div(i_ids, wc0, rounding_mode="floor") * r + r // 2
    d0 = (
        fine0[b_ids, :, cy0 - 1, cx0 - 1] + fine0[b_ids, :, cy0 - 1, cx0]
        + fine0[b_ids, :, cy0, cx0 - 1] + fine0[b_ids, :, cy0, cx0]
    ) / 4  # (M, Cf)
    # image-1 window: fine pixels cx1-W/2 .. cx1+W/2-1 around the cell centre
    half = window // 2
    f1p = F.pad(fine1, [half, half, half, half])
    cx1 = (j_ids % wc1) * r + r // 2
    cy1 = torch.div(j_ids, wc1, rounding_mode="floor") * r + r // 2
    k = torch.arange(window, device=dev) - half  # offsets in fine pixels
    ys = (cy1[:, None] + k[None, :] + half)[:, :, None].expand(m, window, window)
    xs = (cx1[:, None] + k[None, :] + half)[:, None, :].expand(m, window, window)
    win = f1p.permute(0, 2, 3, 1)[b_ids[:, None, None], ys, xs]  # (M, W, W, Cf)
    win = win.reshape(m, window * window, cf)
    logits = torch.einsum("mc,mkc->mk", d0.float(), win.float()) * scale / cf**0.5
    prob = logits.softmax(-1)
    # full-res coordinates of the window's fine pixels: x_full = FINE * u + (FINE - 1) / 2
    gx = (cx1[:, None] + k[None, :]).float() * FINE + (FINE - 1) / 2  # (M, W)
    gy = (cy1[:, None] + k[None, :]).float() * FINE + (FINE - 1) / 2
    w2 = prob.view(m, window, window)
    if local_radius > 0:
        peak = prob.argmax(-1)
        iy, ix = torch.div(peak, window, rounding_mode="floor"), peak % window
        dy = (torch.arange(window, device=dev)[None, :] - iy[:, None]).abs() <= local_radius
        dx = (torch.arange(window, device=dev)[None, :] - ix[:, None]).abs() <= local_radius
        w2 = w2 * (dy[:, :, None] & dx[:, None, :])
        w2 = w2 / w2.sum((1, 2), keepdim=True).clamp_min(1e-12)
    px = (w2 * gx[:, None, :]).sum((1, 2))
    py = (w2 * gy[:, :, None]).sum((1, 2))
    p1 = torch.stack([px, py], -1)
    p0 = cell_centers(i_ids, wc0)
    return p0, p1, prob
