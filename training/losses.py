"""Coarse (focal loss on the dual-softmax matrix) and fine (L2 on sub-pixel positions) losses."""

from __future__ import annotations

import torch

__all__ = ["coarse_focal_loss", "coarse_nll_loss", "fine_l2_loss", "fine_window_ce"]


def coarse_focal_loss(
    conf: torch.Tensor,
    b_ids: torch.Tensor,
    i_ids: torch.Tensor,
    j_ids: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    neg_weight: float = 1.0,
) -> torch.Tensor:
    """Focal loss over a dual-softmax confidence matrix.

    Args:
        conf: ``(B, L0, L1)`` confidences in ``[0, 1]``.
        b_ids: ``(M,)`` positives' batch index.
        i_ids: ``(M,)`` positives' image-0 cell.
        j_ids: ``(M,)`` positives' image-1 cell.
        alpha: focal balance.
        gamma: focal exponent.
        neg_weight: weight of the negative term.

    Returns:
        scalar loss.
    """
    c = conf.clamp(1e-6, 1 - 1e-6)
    pos_mask = torch.zeros_like(c, dtype=torch.bool)
    pos_mask[b_ids, i_ids, j_ids] = True
    if b_ids.numel() == 0:
        pos = c.sum() * 0
    else:
        p = c[b_ids, i_ids, j_ids]
        pos = (-alpha * (1 - p) ** gamma * p.log()).mean()
    n = c[~pos_mask]
    neg = (-(1 - alpha) * n**gamma * (1 - n).log()).mean()
    return pos + neg_weight * neg


def coarse_nll_loss(
    conf: torch.Tensor, b_ids: torch.Tensor, i_ids: torch.Tensor, j_ids: torch.Tensor
) -> torch.Tensor:
    """Negative log-likelihood of the true cell pairs under the dual softmax.

    ``-log(conf) = -log softmax_rows - log softmax_cols``: every positive pulls its row and its
    column towards the true cell, which gives much stronger early gradients than the focal loss
    (whose positive term vanishes while ``conf`` is ~1/L^2). Non-co-visible cells are left free.

    Args:
        conf: ``(B, L0, L1)`` dual-softmax confidences.
        b_ids, i_ids, j_ids: ``(M,)`` positives (batch, image-0 cell, image-1 cell).

    Returns:
        scalar loss (0 when ``M == 0``).
    """
    if b_ids.numel() == 0:
        return conf.sum() * 0
    return -conf[b_ids, i_ids, j_ids].clamp_min(1e-12).log().mean()


def fine_l2_loss(pred: torch.Tensor, target: torch.Tensor, norm: float = 4.0) -> torch.Tensor:
    """Mean Euclidean distance (normalised) between predicted and true sub-pixel positions.

    Args:
        pred: ``(M, 2)`` predicted full-res ``(x, y)``.
        target: ``(M, 2)`` true full-res ``(x, y)``.
        norm: pixels per unit of loss.

    Returns:
        scalar loss (0 when ``M == 0``).
    """
    if pred.numel() == 0:
        return pred.sum() * 0
    return (((pred - target) / norm) ** 2).sum(-1).add(1e-6).sqrt().mean()


def fine_window_ce(
    prob: torch.Tensor, target: torch.Tensor, j_ids: torch.Tensor, wc1: int, window: int
) -> torch.Tensor:
    """Cross-entropy of the fine window's softmax against the bilinear cell of the true position.

    Complements :func:`fine_l2_loss` (whose gradient is weak while the window is near-uniform).

    Args:
        prob: ``(M, W*W)`` window softmax from :func:`xgeo.matcher.fine.refine`.
        target: ``(M, 2)`` true full-res ``(x, y)`` in image 1.
        j_ids: ``(M,)`` image-1 coarse cells (window centres).
        wc1: coarse width of image 1.
        window: window side ``W``.

    Returns:
        scalar loss (0 when ``M == 0``).
    """
    from xgeo.matcher.fine import COARSE, FINE

    if prob.numel() == 0:
        return prob.sum() * 0
    r = COARSE // FINE
    half = window // 2
    cx = (j_ids % wc1) * r + r // 2 - half
    cy = torch.div(j_ids, wc1, rounding_mode="floor") * r + r // 2 - half
    u = (target[:, 0] - (FINE - 1) / 2) / FINE - cx  # continuous window column
    v = (target[:, 1] - (FINE - 1) / 2) / FINE - cy
    u = u.clamp(0, window - 1 - 1e-4)
    v = v.clamp(0, window - 1 - 1e-4)
    u0, v0 = u.floor(), v.floor()
    du, dv = u - u0, v - v0
    logp = prob.clamp_min(1e-8).log().view(-1, window, window)
    m = torch.arange(len(u), device=prob.device)
    u0, v0 = u0.long(), v0.long()
    u1, v1 = (u0 + 1).clamp(max=window - 1), (v0 + 1).clamp(max=window - 1)
    ce = -((1 - du) * (1 - dv) * logp[m, v0, u0] + du * (1 - dv) * logp[m, v0, u1]
           + (1 - du) * dv * logp[m, v1, u0] + du * dv * logp[m, v1, u1])
    return ce.mean()
