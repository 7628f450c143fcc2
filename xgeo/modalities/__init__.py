"""Modalities: per-modality normalisation of scenes to one ``[0, 1]`` float32 band.

Public face over ``_norm.py``; see its docstring for the exact recipe per modality.
"""

from __future__ import annotations

from xgeo.modalities._norm import LUMINANCE, NormStats, compute_stats, normalise, to_single_band

__all__ = ["NormStats", "compute_stats", "normalise", "to_single_band", "LUMINANCE"]
