"""Weight-free synthetic cross-modal data engine for earth observation.

Seeded procedural worlds (:func:`generate_world`), one physically motivated renderer per
modality (:func:`render`), translators that turn real images into other modalities
(:func:`translate`), random warps with exact dense ground truth (:func:`random_warp`,
:func:`make_pair`) and a writer of georeferenced scene pairs with a known misregistration
(:func:`write_scene_pair`). Everything is deterministic by seed and free of torch.
"""

from __future__ import annotations

from xgeo.synth.pairs import PAIR_MODALITIES, Pair, make_pair, to_display
from xgeo.synth.render import MODALITIES, RENDERERS, hillshade, render, render_with_mask
from xgeo.synth.scene import SceneTruth, write_scene_pair
from xgeo.synth.translate import TRANSLATORS, translate
from xgeo.synth.warp import Warp, random_warp, similarity_warp, warp_image
from xgeo.synth.world import LANDCOVER, World, generate_world

ENGINE_VERSION = "1.2"  # 1.1: glaciers/snow, wilderness worlds, thematic layer maps;
#                          1.2: stereo-DEM error (render noise_m, make_pair dem_noise_share)

__all__ = [
    "ENGINE_VERSION",
    "LANDCOVER",
    "MODALITIES",
    "PAIR_MODALITIES",
    "Pair",
    "RENDERERS",
    "SceneTruth",
    "TRANSLATORS",
    "Warp",
    "World",
    "generate_world",
    "hillshade",
    "make_pair",
    "random_warp",
    "render",
    "render_with_mask",
    "similarity_warp",
    "write_scene_pair",
    "to_display",
    "translate",
    "warp_image",
]
