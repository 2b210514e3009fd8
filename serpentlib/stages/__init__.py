"""What differs per stage: small functions the stage notebooks call."""

from .common import StageResult, fetch_profile
from .stage1 import stage1, write_wrappers

__all__ = ["StageResult", "fetch_profile", "stage1", "write_wrappers"]
