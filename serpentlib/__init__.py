"""serpentlib: reproducible, measured bootstraps of a musl + LLVM Linux system."""

__version__ = "0.1.0"
