"""Live performance tracking, measured with the backtester's metric code so the two compare side by side."""

from performance.tracker import PerformanceTracker

__all__ = ["PerformanceTracker"]
