"""The reference point: the late-fusion backbone (MCULoRA's network without any adapters), trained on all 7
combinations uniformly."""

from mculora.training.methods.base import register
from mculora.training.methods.late_fusion import LateFusionMethod


@register
class BaselineMethod(LateFusionMethod):
    name = "baseline"
