"""Process-level helpers for entry points (logging setup)."""

from utils.logger import setup_logging, shutdown_logging

__all__ = ["setup_logging", "shutdown_logging"]
