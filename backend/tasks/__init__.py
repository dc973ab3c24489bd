"""The MotionGPT3 tasks over a loaded model (text-to-motion, captioning, prediction, in-betweening, shots)."""

from .inference import (
    NO_CONTROL,
    GenerationCancelled,
    TaskControl,
    TaskError,
    inbetween,
    motion_to_text,
    predict,
    text_to_motion,
)
from .shot import shot_to_motion

__all__ = [
    "NO_CONTROL",
    "GenerationCancelled",
    "TaskControl",
    "TaskError",
    "inbetween",
    "motion_to_text",
    "predict",
    "shot_to_motion",
    "text_to_motion",
]
