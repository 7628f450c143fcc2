"""Datasets for training: torch adapters over the synthetic engine (:mod:`xgeo.synth`)."""

from training.data.synthetic import (
    MODALITY_IDS,
    SyntheticPairDataset,
    SyntheticPairStream,
    TranslatedImagePairs,
    collate,
    pair_to_item,
    photometric,
)

__all__ = [
    "MODALITY_IDS",
    "SyntheticPairDataset",
    "SyntheticPairStream",
    "TranslatedImagePairs",
    "collate",
    "pair_to_item",
    "photometric",
]
