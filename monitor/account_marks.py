"""The monitor's own high-water mark and start-of-day value of the account, from the broker's NetLiquidation.

Why its own: the kill drawdown must not depend on the engine's numbers (a bug in the engine's ledger is one of the
things the monitor guards against), so the peak and the day's first value come from the account summary the
monitor reads through its own IB connection.

They are persisted (``<state_dir>/risk_monitor_marks.json``, atomic replace) so a monitor restart neither forgets a
peak (which would hide a drawdown) nor invents one. The file names the account; another account's file is ignored.
An unreadable file is logged and replaced by fresh marks (the next value read becomes the peak): a corrupt marks
file must not stop the kill switch from running. Writes are throttled to one per ``persist_every_s``; a new day or
a new account is written at once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from core.clock import NS_PER_SECOND
from monitor.trading_day import NEW_YORK, local_date
from utils.atomic_files import atomic_write_bytes

log = logging.getLogger(__name__)

MARKS_FILE_NAME = "risk_monitor_marks.json"
MARKS_VERSION = 1


@dataclass(frozen=True, slots=True)
class AccountView:
    """One NetLiquidation reading against the marks; percentages are positive for a loss (0 at or above)."""

    account: str
    net_liquidation: float
    peak: float
    drawdown_pct: float
    day_start: float
    daily_loss_pct: float


@dataclass(slots=True)
class _Marks:
    account: str
    peak: float
    day: str  # ISO date in New York
    day_start: float
    v: int = MARKS_VERSION


def loss_pct(reference: float, value: float) -> float:
    """How far ``value`` is below ``reference``, in percent of ``reference`` (0 when not below)."""
    if reference <= 0:
        return 0.0
    return max(0.0, (reference - value) / reference * 100.0)


class AccountMarks:
    """Peak and day start of NetLiquidation per account; ``update`` is called by the monitor loop only."""

    def __init__(self, path: Path | str, *, tz: ZoneInfo = NEW_YORK, persist_every_s: float = 1.0) -> None:
        self.path = Path(path)
        self.tz = tz
        self.persist_every_ns = int(persist_every_s * NS_PER_SECOND)
        self._marks: _Marks | None = self._load()
        self._dirty = False
        self._last_write_ns = 0

    def update(self, account: str, net_liquidation: float, now_ns: int) -> AccountView:
        """Fold one reading into the marks and measure it against them."""
        today = local_date(now_ns, self.tz).isoformat()
        marks = self._marks
        urgent = False
        if marks is None or marks.account != account:
            if marks is not None:
                log.warning("event=marks_account_changed old=%s new=%s action=fresh_marks", marks.account, account)
            marks = self._marks = _Marks(account=account, peak=net_liquidation, day=today, day_start=net_liquidation)
            urgent = True
        if marks.day != today:
            log.info("event=marks_new_day day=%s day_start=%.2f peak=%.2f", today, net_liquidation, marks.peak)
            marks.day, marks.day_start, urgent = today, net_liquidation, True
        if net_liquidation > marks.peak:
            marks.peak, self._dirty = net_liquidation, True
        self._dirty = self._dirty or urgent
        if self._dirty and (urgent or now_ns - self._last_write_ns >= self.persist_every_ns):
            self._save(now_ns)
        return AccountView(
            account=account,
            net_liquidation=net_liquidation,
            peak=marks.peak,
            drawdown_pct=loss_pct(marks.peak, net_liquidation),
            day_start=marks.day_start,
            daily_loss_pct=loss_pct(marks.day_start, net_liquidation),
        )

    def flush(self, now_ns: int) -> None:
        if self._dirty:
            self._save(now_ns)

    def _save(self, now_ns: int) -> None:
        if self._marks is None:
            return
        try:
            atomic_write_bytes(self.path, json.dumps(asdict(self._marks), separators=(",", ":")).encode())
        except OSError as exc:
            log.error("event=marks_write_failed path=%s error=%s", self.path, exc)
            return
        self._dirty, self._last_write_ns = False, now_ns

    def _load(self) -> _Marks | None:
        try:
            raw = json.loads(self.path.read_bytes())
            marks = _Marks(
                account=str(raw["account"]),
                peak=float(raw["peak"]),
                day=str(raw["day"]),
                day_start=float(raw["day_start"]),
                v=int(raw.get("v", MARKS_VERSION)),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("event=marks_unreadable path=%s error=%r action=fresh_marks", self.path, exc)
            return None
        log.info(
            "event=marks_loaded path=%s account=%s peak=%.2f day=%s day_start=%.2f",
            self.path,
            marks.account,
            marks.peak,
            marks.day,
            marks.day_start,
        )
        return marks
