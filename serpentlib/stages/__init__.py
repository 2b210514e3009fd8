"""What differs per stage: small functions the stage notebooks call."""

from .common import StageResult
from .stage1 import stage1, write_wrappers
from .stage2 import stage2
from .stage3 import stage3
from .stage4 import stage4

__all__ = ["StageResult", "stage1", "stage2", "stage3", "stage4", "write_wrappers"]
