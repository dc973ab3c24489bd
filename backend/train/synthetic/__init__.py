"""Procedural 22-joint human motions with captions, written in the HumanML3D layout (synthetic training data).

Modules: `curves` (time profiles), `rig` (body, pose tracks -> joints by FK + leg IK), `locomotion` (stepping
gaits with planted feet), `actions` (the action vocabulary), `captions` (varied text and word/POS tokens),
`dataset` (`generate_synthetic_set`, `make_clip` for a planned action list, `write_humanml3d_layout`).
Families: the default set draws DEFAULT_FAMILIES (unchanged: the first set, the data of the models installed before
the embedded one); `families=ALL_FAMILIES` (the embedded model's data) adds bow, punch, throw, hop, crawl, climb, jog
and sprint.
Conventions: Y-up, metres, 20 fps, the body faces +Z at rest with its left on +X; heading is a yaw about +Y,
positive = a turn to the left (counter-clockwise seen from above).
"""

from .actions import ALL_FAMILIES, DEFAULT_FAMILIES
from .dataset import SyntheticClip, generate_synthetic_set, make_clip, write_humanml3d_layout

__all__ = [
    "ALL_FAMILIES",
    "DEFAULT_FAMILIES",
    "SyntheticClip",
    "generate_synthetic_set",
    "make_clip",
    "write_humanml3d_layout",
]
