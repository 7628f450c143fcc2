"""Coarse transformer: interleaved self/cross attention on 1/8 tokens.

Attention is *aggregated* (EfficientLoFTR-style): queries are reduced by a strided depthwise
convolution and keys/values by max-pooling, attention runs on the reduced grid, and the message is
upsampled back. Self-attention carries a 2-D rotary position encoding (RoPE); cross-attention has
none, since positions in the two images are unrelated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["rope_2d", "AggregatedAttentionLayer", "CoarseTransformer"]


def rope_2d(x: torch.Tensor, h: int, w: int, base: float) -> torch.Tensor:
    """Apply a 2-D rotary position encoding to per-head features.

    Half the channels of each head rotate with the column, half with the row.

    Args:
        x: ``(B, nhead, h*w, D)`` with ``D`` divisible by 4, tokens in row-major order.
        h: grid height.
        w: grid width.
        base: largest wavelength, in grid cells.

    Returns:
        ``(B, nhead, h*w, D)`` rotated features.
    """
    d = x.shape[-1]
    n_freq = d // 4
    freqs = base ** (-torch.arange(n_freq, device=x.device, dtype=torch.float32) / n_freq)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=torch.float32),
        torch.arange(w, device=x.device, dtype=torch.float32),
        indexing="ij",
    )
    ang = torch.cat([xs.reshape(-1, 1) * freqs, ys.reshape(-1, 1) * freqs], dim=1)  # (L, D/2)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)


class AggregatedAttentionLayer(nn.Module):
    """One attention layer (self or cross) with aggregation and a feed-forward merge.

    Args:
        d_model: token width ``C``.
        nhead: heads.
        agg: aggregation stride (1 = none).
        rope: apply rotary position encoding (self-attention).
        rope_base: RoPE base wavelength.

    Shapes:
        ``x (B, C, H, W)``, ``source (B, C, H', W')`` -> ``(B, C, H, W)``.
    """

    def __init__(self, d_model: int, nhead: int, agg: int, rope: bool, rope_base: float) -> None:
        super().__init__()
        self.nhead, self.agg, self.rope, self.rope_base = nhead, agg, rope, rope_base
        self.q_agg = (
            nn.Conv2d(d_model, d_model, agg, agg, groups=d_model, bias=False) if agg > 1 else None
        )
        self.norm_in = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.merge = nn.Linear(d_model, d_model, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * d_model, 2 * d_model, bias=False),
            nn.GELU(),
            nn.Linear(2 * d_model, d_model, bias=False),
        )
        self.norm_out = nn.LayerNorm(d_model)

    def _reduce(self, x: torch.Tensor, query: bool) -> torch.Tensor:
        if self.agg == 1:
            return x
        pad_h, pad_w = (-x.shape[2]) % self.agg, (-x.shape[3]) % self.agg
        if pad_h or pad_w:
            x = F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")
        if query:
            assert self.q_agg is not None
            return self.q_agg(x)
        return F.max_pool2d(x, self.agg, self.agg)

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        xq = self._reduce(x, query=True)
        xs = self._reduce(source, query=False)
        hq, wq = xq.shape[2:]
        hs, ws = xs.shape[2:]
        tq = self.norm_in(xq.flatten(2).transpose(1, 2))  # (B, Lq, C)
        ts = self.norm_in(xs.flatten(2).transpose(1, 2))  # (B, Ls, C)
        dh = c // self.nhead
        q = self.q(tq).view(b, -1, self.nhead, dh).transpose(1, 2)  # (B, h, Lq, dh)
        k = self.k(ts).view(b, -1, self.nhead, dh).transpose(1, 2)
        v = self.v(ts).view(b, -1, self.nhead, dh).transpose(1, 2)
        if self.rope:
            q = rope_2d(q, hq, wq, self.rope_base / self.agg)
            k = rope_2d(k, hs, ws, self.rope_base / self.agg)
        msg = F.scaled_dot_product_attention(q, k, v)  # (B, h, Lq, dh)
        msg = self.merge(msg.transpose(1, 2).reshape(b, hq * wq, c))
        msg = msg.transpose(1, 2).reshape(b, c, hq, wq)
        if self.agg > 1:
            msg = F.interpolate(msg, scale_factor=self.agg, mode="bilinear", align_corners=False)
            msg = msg[:, :, :h, :w]
        xt = x.flatten(2).transpose(1, 2)  # (B, L, C)
        mt = msg.flatten(2).transpose(1, 2)
        out = self.norm_out(self.mlp(torch.cat([xt, mt], dim=-1)))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class CoarseTransformer(nn.Module):
    """Stack of interleaved self/cross attention layers over both images' 1/8 features.

    Args:
        d_model: token width ``C``.
        nhead: heads.
        layer_names: sequence of ``"self"`` / ``"cross"``.
        agg: aggregation stride.
        rope_base: RoPE base wavelength.

    Shapes:
        ``feat0 (B, C, H0, W0)``, ``feat1 (B, C, H1, W1)`` -> same shapes.
    """

    def __init__(
        self, d_model: int, nhead: int, layer_names: tuple[str, ...], agg: int, rope_base: float
    ) -> None:
        super().__init__()
        self.layer_names = tuple(layer_names)
        self.layers = nn.ModuleList(
            AggregatedAttentionLayer(d_model, nhead, agg, rope=(n == "self"), rope_base=rope_base)
            for n in self.layer_names
        )

    def forward(
        self, feat0: torch.Tensor, feat1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        same = feat0.shape == feat1.shape
        for name, layer in zip(self.layer_names, self.layers, strict=True):
            if same:  # run both directions as one batch
                x = torch.cat([feat0, feat1], 0)
                src = x if name == "self" else torch.cat([feat1, feat0], 0)
                feat0, feat1 = layer(x, src).chunk(2, 0)
            elif name == "self":
                feat0, feat1 = layer(feat0, feat0), layer(feat1, feat1)
            else:
                feat0, feat1 = layer(feat0, feat1), layer(feat1, feat0)
        return feat0, feat1
