"""Inference: images in, label map out, as a small package whose files say the pipeline.

- ``pipeline``: ``segment_images`` / ``segment_files``, the stages and their progress;
- ``predictor``: the one predictor (window plan, flips, blending through MONAI's sliding window), which training
  validation uses too;
- ``restore``: the probabilities back onto the first input's grid, argmax and the card's post-processing;
- ``export``: output paths checked before any work, every output written verified, all or none.

Preparing the inputs (check, reorient, resample, crop, normalise) is ``preprocessing``.
"""

from .export import check_output_paths, write_outputs
from .pipeline import STAGES, SegmentationResult, StageProgress, segment_files, segment_images
from .predictor import WINDOW_MAX_SCALE, Predictor, WindowPlan, flips, predict_volume
from .restore import to_input_grid

__all__ = [
    "STAGES", "WINDOW_MAX_SCALE", "Predictor", "SegmentationResult", "StageProgress", "WindowPlan",
    "check_output_paths", "flips", "predict_volume", "segment_files", "segment_images", "to_input_grid",
    "write_outputs",
]
