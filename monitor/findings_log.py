"""Which findings are active, since when, and when each breach was first seen; each change logged once.

Why separate: the watchers are judged every loop turn (tens of times a second), but a person reading the log wants
one line when a breach or an alarm appears and one when it clears, and the heartbeat file and the benchmark want
the first moment each breach was seen. Monitor loop thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from monitor.checks import Finding, Kind

log = logging.getLogger(__name__)


class FindingsLog:
    """Transitions of the findings from one evaluation to the next (see the module docstring)."""

    def __init__(self, confirm_checks: int, on_first_seen: Callable[[Kind, int, str], None]) -> None:
        self.confirm_checks = confirm_checks
        self.first_seen_ns: dict[Kind, int] = {}
        self.active: dict[Kind, Finding] = {}
        self.since_ns: dict[Kind, int] = {}
        self._on_first_seen = on_first_seen

    def note_first_seen(self, kind: Kind, now_ns: int, detail: str) -> None:
        """Remember the first time a breach kind was seen (kept for the life of the process)."""
        if kind not in self.first_seen_ns:
            self.first_seen_ns[kind] = now_ns
            self._on_first_seen(kind, now_ns, detail)

    def update(self, findings: Sequence[Finding], now_ns: int) -> None:
        current: dict[Kind, Finding] = {}
        for finding in findings:
            current.setdefault(finding.kind, finding)
        for kind, finding in current.items():
            if kind in self.active:
                continue
            self.since_ns[kind] = now_ns
            if finding.breach:
                self.note_first_seen(kind, now_ns, finding.detail)
                log.error(
                    "event=breach_seen kind=%s ts_ns=%d confirm=1/%d detail=%r",
                    kind,
                    now_ns,
                    self.confirm_checks,
                    finding.detail,
                )
            else:
                log.warning("event=alarm_raised kind=%s ts_ns=%d detail=%r", kind, now_ns, finding.detail)
        for kind, finding in self.active.items():
            if kind not in current:
                self.since_ns.pop(kind, None)
                what = "breach_cleared" if finding.breach else "alarm_cleared"
                log.warning("event=%s kind=%s ts_ns=%d", what, kind, now_ns)
        self.active = current
