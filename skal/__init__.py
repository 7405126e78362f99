"""skal: scikit-learn-style active learning for biomedical image classification."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skal")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
