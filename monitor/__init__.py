"""The independent risk monitor: a separate process that watches the engine and can stop it (``risk_monitor.py``)."""

from monitor.runner import MonitorRunner, build_monitor

__all__ = ["MonitorRunner", "build_monitor"]
