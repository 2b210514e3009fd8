"""What differs per stage: small functions the stage notebooks call, each with the stage's
parameters as one typed object."""

from ..build.profile import StageParams
from ..rows import require_passed
from .common import StageResult
from .lane import lane
from .stage1 import stage1, write_wrappers
from .stage2 import stage2
from .stage3 import stage3
from .stage4 import stage4

__all__ = ["StageParams", "StageResult", "lane", "require_passed", "stage1", "stage2", "stage3", "stage4", "write_wrappers"]
