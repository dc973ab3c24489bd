"""The four MotionGPT3 tasks over a loaded model (text-to-motion, captioning, prediction, in-betweening)."""

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

__all__ = [
    "NO_CONTROL",
    "GenerationCancelled",
    "TaskControl",
    "TaskError",
    "inbetween",
    "motion_to_text",
    "predict",
    "text_to_motion",
]
