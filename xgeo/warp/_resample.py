"""Block-wise resampling of the moving file onto the common (reference) grid.

For one output block of the common grid the chain ``ref pixel -> model.inverse -> grid-mov
pixel -> plan.grid_to_mov_file -> moving-file pixel`` is evaluated on a coarse lattice of nodes
(every ``step`` pixels) and interpolated bilinearly to every pixel. This is exact for affine
chains and sub-millipixel for smooth ones (polynomials, splines, map projections), and it keeps
the cost of expensive inverses (iterative polynomial / TPS inverses, pyproj) independent of
the pixel count. Only the window of the moving file that the block needs is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

__all__ = ["RESAMPLINGS", "BlockSource", "coordinate_field", "remap_block"]

RESAMPLINGS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
}
_MARGIN = 3  # source pixels read around the needed footprint (bilinear/cubic support)
_FAR = -1.0e6  # coordinate given to non-finite mappings: lands outside every window
_CV_MAX = 32000  # cv2.remap sources must stay below SHRT_MAX pixels on a side


def _nodes(mapping: Callable[[np.ndarray], np.ndarray], gx: np.ndarray,
           gy: np.ndarray) -> np.ndarray:
    xx, yy = np.meshgrid(gx, gy)
    out = np.asarray(mapping(np.stack([xx.ravel(), yy.ravel()], axis=1)), dtype=np.float64)
    return out.reshape(len(gy), len(gx), 2)


def _interp_nodes(nodes: np.ndarray, step: int, width: int, height: int) -> np.ndarray:
    """Bilinear interpolation of ``(ny, nx, 2)`` nodes (spacing ``step``) to ``(h, w, 2)``."""
    ny, nx = nodes.shape[:2]
    fx = np.arange(width, dtype=np.float64) / step
    ix = np.minimum(np.floor(fx).astype(np.intp), nx - 2)
    tx = (fx - ix)[None, :, None]
    fy = np.arange(height, dtype=np.float64) / step
    iy = np.minimum(np.floor(fy).astype(np.intp), ny - 2)
    ty = (fy - iy)[:, None, None]
    rows = nodes[:, ix] * (1.0 - tx) + nodes[:, ix + 1] * tx  # (ny, width, 2)
    return rows[iy] * (1.0 - ty) + rows[iy + 1] * ty  # (height, width, 2)


def coordinate_field(
    mapping: Callable[[np.ndarray], np.ndarray],
    x0: int,
    y0: int,
    width: int,
    height: int,
    step: int = 16,
    tol: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate ``mapping`` on a node lattice and interpolate it to every pixel of a block.

    The lattice is refined (``step`` halved) until bilinear interpolation of the nodes agrees
    with the exact mapping at every cell centre within ``tol`` pixels, so strongly curved
    models (local TPS) stay exact while affine chains cost one coarse evaluation.

    Args:
        mapping: ``(N, 2) -> (N, 2)`` point mapping, ``(x, y)`` pixel centres.
        x0: first column of the block.
        y0: first row of the block.
        width: block width in pixels.
        height: block height in pixels.
        step: initial node spacing in pixels (``1`` evaluates every pixel).
        tol: largest accepted interpolation error in output pixels of the mapping.

    Returns:
        ``(map_x, map_y)``, float64 ``(height, width)`` each; non-finite results become ``-1e6``
        so that they fall outside any source window.
    """
    step = max(1, int(step))
    while True:
        nx = max(2, math.ceil((width - 1) / step) + 1)
        ny = max(2, math.ceil((height - 1) / step) + 1)
        gx = x0 + step * np.arange(nx, dtype=np.float64)
        gy = y0 + step * np.arange(ny, dtype=np.float64)
        nodes = _nodes(mapping, gx, gy)
        if step == 1:
            break
        cx, cy = gx[:-1] + step / 2, gy[:-1] + step / 2
        exact = _nodes(mapping, cx, cy)
        approx = 0.25 * (nodes[:-1, :-1] + nodes[1:, :-1] + nodes[:-1, 1:] + nodes[1:, 1:])
        err = np.abs(exact - approx)
        finite = np.isfinite(err).all(axis=-1)
        if not finite.any() or float(err[finite].max()) <= tol:
            break
        step = max(1, step // 2)
    field = _interp_nodes(nodes, step, width, height)
    field[~np.isfinite(field).all(axis=-1)] = _FAR
    return field[..., 0], field[..., 1]


@dataclass(frozen=True)
class BlockSource:
    """What :func:`remap_block` needs to know about the moving file.

    Attributes:
        width: file width in pixels.
        height: file height in pixels.
        count: number of bands.
        nodata: the file's nodata value, or ``None``.
    """

    width: int
    height: int
    count: int
    nodata: float | None


def _source_window(
    map_x: np.ndarray, map_y: np.ndarray, src: BlockSource
) -> tuple[int, int, int, int] | None:
    """Clipped ``(col0, row0, col1, row1)`` of the file footprint of a block, or ``None``."""
    inside = (map_x > -1.0) & (map_x < src.width) & (map_y > -1.0) & (map_y < src.height)
    if not inside.any():
        return None
    mx, my = map_x[inside], map_y[inside]
    c0 = max(0, math.floor(mx.min()) - _MARGIN)
    r0 = max(0, math.floor(my.min()) - _MARGIN)
    c1 = min(src.width, math.ceil(mx.max()) + _MARGIN + 1)
    r1 = min(src.height, math.ceil(my.max()) + _MARGIN + 1)
    if c1 <= c0 or r1 <= r0:
        return None
    return c0, r0, c1, r1


def _valid_mask(data: np.ndarray, ds_masks: np.ndarray | None, nodata: float | None) -> np.ndarray:
    """``(H, W)`` bool: a pixel is valid when it is valid in every band."""
    valid = np.ones(data.shape[1:], dtype=bool)
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data).all(axis=0)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        valid &= (data != nodata).all(axis=0)
    if ds_masks is not None:
        valid &= (ds_masks > 0).all(axis=0)
    return valid


def remap_block(
    ds: rasterio.io.DatasetReader,
    src: BlockSource,
    map_x: np.ndarray,
    map_y: np.ndarray,
    resampling: str,
    use_dataset_mask: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample every band of the moving file at the given file-pixel positions.

    Only the footprint window of the file is read. When the footprint is much larger than the
    block (the moving file is finer than the common grid) the window is read decimated with
    GDAL's ``average`` so that memory stays proportional to the block, not to the scene.

    Args:
        ds: the open moving file.
        src: its size, band count and nodata.
        map_x: float64 ``(h, w)`` file column of each output pixel centre.
        map_y: float64 ``(h, w)`` file row of each output pixel centre.
        resampling: ``nearest`` | ``bilinear`` | ``cubic``.
        use_dataset_mask: also honour the file's per-band masks (e.g. an internal mask band).

    Returns:
        ``(values, valid)``: float32 ``(count, h, w)`` (undefined where invalid) and bool
        ``(h, w)``. A pixel is valid where its (interpolation-weighted) support is at least
        half valid; values are renormalised by that weight so edges do not darken.
    """
    h, w = map_x.shape
    values = np.zeros((src.count, h, w), dtype=np.float32)
    win = _source_window(map_x, map_y, src)
    if win is None:
        return values, np.zeros((h, w), dtype=bool)
    c0, r0, c1, r1 = win
    ww, wh = c1 - c0, r1 - r0
    f = max(1, int(min(ww / max(w, 1), wh / max(h, 1))), math.ceil(max(ww, wh) / _CV_MAX))
    window = Window(c0, r0, ww, wh)
    if f > 1:
        out_shape = (src.count, max(1, math.ceil(wh / f)), max(1, math.ceil(ww / f)))
        data = ds.read(window=window, out_shape=out_shape, resampling=Resampling.average)
        masks = (ds.read_masks(window=window, out_shape=out_shape, resampling=Resampling.nearest)
                 if use_dataset_mask else None)
        fx, fy = ww / out_shape[2], wh / out_shape[1]
        lx = ((map_x - c0 + 0.5) / fx - 0.5).astype(np.float32)
        ly = ((map_y - r0 + 0.5) / fy - 0.5).astype(np.float32)
    else:
        data = ds.read(window=window)
        masks = ds.read_masks(window=window) if use_dataset_mask else None
        lx = (map_x - c0).astype(np.float32)
        ly = (map_y - r0).astype(np.float32)

    valid_src = _valid_mask(data, masks, src.nodata)
    interp = RESAMPLINGS[resampling]
    border = dict(borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    if interp == cv2.INTER_NEAREST:
        weight = cv2.remap(valid_src.astype(np.float32), lx, ly, cv2.INTER_NEAREST, **border)
        valid = weight > 0.5
        for b in range(src.count):
            band = data[b].astype(np.float32)
            values[b] = cv2.remap(band, lx, ly, cv2.INTER_NEAREST, **border)
        return values, valid

    vmask = valid_src.astype(np.float32)
    weight = cv2.remap(vmask, lx, ly, cv2.INTER_LINEAR, **border)
    valid = weight >= 0.5 - 1e-6
    safe = np.where(valid, weight, 1.0).astype(np.float32)
    for b in range(src.count):
        band = np.where(valid_src, data[b], 0).astype(np.float32)
        if interp == cv2.INTER_CUBIC:
            # cubic weights of a 0/1 mask are not a partition of unity near holes: fill holes by
            # the bilinear estimate first so the cubic kernel never sees the zero padding.
            lin = cv2.remap(band, lx, ly, cv2.INTER_LINEAR, **border) / safe
            cub = cv2.remap(band, lx, ly, cv2.INTER_CUBIC, **border)
            interior = cv2.erode(valid_src.astype(np.uint8), np.ones((5, 5), np.uint8))
            inner = cv2.remap(interior.astype(np.float32), lx, ly, cv2.INTER_NEAREST,
                              **border) > 0.5
            values[b] = np.where(inner, cub, lin)
        else:
            values[b] = cv2.remap(band, lx, ly, cv2.INTER_LINEAR, **border) / safe
    return values, valid
