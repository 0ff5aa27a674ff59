"""The signal veto in the shared decision path: entries below the threshold are not traded and are counted; exits
and covers are never vetoed (not even asked about); a signal without features is vetoed unless its strategy says
``allow``. Driven through the backtester's wiring, the same PortfolioManager the live engine runs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from backtester.engine import build_backtest
from core.config_models import AppConfig
from core.events import SignalDirection, SignalEvent
from data.calendar import TradingCalendar
from data.panel import BarPanel
from portfolio.veto import LAST_VETOES_KEPT, ScorerByStrategy, SignalVeto, veto_rules
from testkit.bars import synthetic_panel
from testkit.strategies import ScriptedStrategy

LONG, SHORT, EXIT = 1, -1, 2


class RecordingScorer:
    """Probabilities by bar index of the decision (None: no features); records every signal it was asked about."""

    def __init__(self, panel: BarPanel, by_bar: Mapping[int, float | None], default: float | None = 0.9) -> None:
        self._by_ts = {int(panel.ts_event_ns[t]): p for t, p in by_bar.items()}
        self._default = default
        self.asked: list[SignalEvent] = []

    def probability(self, signal: SignalEvent) -> float | None:
        self.asked.append(signal)
        return self._by_ts.get(signal.ts_event_ns, self._default)


@pytest.fixture(scope="module")
def panel() -> BarPanel:
    return synthetic_panel(n_symbols=2, start="2023-01-03", end="2023-03-31", seed=5)


def run(panel: BarPanel, script: dict, veto: SignalVeto | None, config: AppConfig | None = None):
    strategy = ScriptedStrategy(script, stop_distance=5.0)  # 100 shares of a ~$60-95 symbol: inside every limit
    backtest = build_backtest(config or AppConfig(), panel, [strategy], TradingCalendar(), veto=veto)
    return backtest.run()


def veto_of(scorer: RecordingScorer, threshold: float = 0.5, on_missing: str = "veto") -> SignalVeto:
    return SignalVeto({"momentum": threshold}, scorer, {"momentum": on_missing})


def test_an_entry_below_the_threshold_is_vetoed_counted_and_remembered(panel: BarPanel) -> None:
    scorer = RecordingScorer(panel, {5: 0.31})
    veto = veto_of(scorer)
    result = run(panel, {(5, "SYM000"): LONG, (12, "SYM001"): LONG}, veto)
    assert result.ignored_signals.get("veto") == 1
    assert veto.counts == {"vetoed": 1, "passed": 1}
    assert set(result.fills["symbol"]) == {"SYM001"}  # only the entry that passed traded
    [last] = veto.last
    assert last.vetoed and last.probability == pytest.approx(0.31) and last.reason == "p=0.31 < threshold 0.50"
    assert (last.strategy_id, last.symbol, last.ts_event_ns) == ("momentum", "SYM000", int(panel.ts_event_ns[5]))


def test_exits_are_never_vetoed_nor_scored(panel: BarPanel) -> None:
    scorer = RecordingScorer(panel, {5: 0.9, 15: 0.0})  # a zero at the exit bar must not matter
    result = run(panel, {(5, "SYM000"): LONG, (15, "SYM000"): EXIT}, veto_of(scorer))
    assert [s.direction for s in scorer.asked] == [SignalDirection.LONG]
    sides = result.fills[result.fills["symbol"] == "SYM000"]["side"].tolist()
    assert sides == ["BUY", "SELL"]  # entered and closed
    assert "veto" not in result.ignored_signals


def test_a_cover_is_never_vetoed(panel: BarPanel) -> None:
    raw = AppConfig().model_dump()
    raw["portfolio"].update(allow_short=True, account_type="margin")
    raw["pre_trade"]["allow_short_sales"] = True
    config = AppConfig.model_validate(raw)
    scorer = RecordingScorer(panel, {5: 0.9, 15: 0.0})
    result = run(panel, {(5, "SYM000"): SHORT, (15, "SYM000"): LONG}, veto_of(scorer), config)
    assert [s.direction for s in scorer.asked] == [SignalDirection.SHORT]  # the LONG that covers is not asked
    assert result.fills["side"].tolist() == ["SELL", "BUY"]


def test_an_entry_while_positioned_never_reaches_the_veto(panel: BarPanel) -> None:
    scorer = RecordingScorer(panel, {})
    result = run(panel, {(5, "SYM000"): LONG, (8, "SYM000"): LONG}, veto_of(scorer))
    assert len(scorer.asked) == 1 and result.ignored_signals.get("already_positioned") == 1


@pytest.mark.parametrize(("on_missing", "traded", "counted"), [("veto", False, "vetoed_missing"),
                                                                ("allow", True, "allowed_missing")])  # fmt: skip
def test_missing_features_veto_by_default_and_pass_with_allow(
    panel: BarPanel, on_missing: str, traded: bool, counted: str
) -> None:
    veto = veto_of(RecordingScorer(panel, {5: None}), on_missing=on_missing)
    result = run(panel, {(5, "SYM000"): LONG}, veto)
    assert (len(result.fills) > 0) is traded
    assert veto.counts == {counted: 1}
    if not traded:
        assert veto.last[0].reason == "features missing or stale" and veto.last[0].probability is None


def test_rule_edges_nan_the_threshold_itself_and_strategies_without_a_veto() -> None:
    class Fixed:
        def __init__(self, p: float | None) -> None:
            self.p = p

        def probability(self, signal: SignalEvent) -> float | None:
            return self.p

    def signal(strategy: str = "momentum", direction: SignalDirection = SignalDirection.LONG) -> SignalEvent:
        return SignalEvent(ts_event_ns=1, ts_init_ns=1, strategy_id=strategy, symbol="A", direction=direction,
                           reference_price=10.0)  # fmt: skip

    assert SignalVeto({"momentum": 0.5}, Fixed(math.nan), {}).check(signal()).reason == "features missing or stale"
    assert not SignalVeto({"momentum": 0.5}, Fixed(0.5), {}).check(signal()).vetoed  # at the threshold: passes
    unchecked = SignalVeto({"momentum": 0.5}, Fixed(0.0), {})
    assert not unchecked.check(signal("mean_reversion")).vetoed and not unchecked.counts
    assert not unchecked.check(signal(direction=SignalDirection.EXIT)).vetoed
    many = SignalVeto({"momentum": 0.5}, Fixed(0.1), {})
    for _ in range(LAST_VETOES_KEPT + 5):
        many.check(signal())
    assert len(many.last) == LAST_VETOES_KEPT and many.counts["vetoed"] == LAST_VETOES_KEPT + 5
    with pytest.raises(ValueError, match=r"thresholds must be in \(0, 1\)"):
        SignalVeto({"momentum": 1.0}, Fixed(0.1), {})
    with pytest.raises(ValueError, match="on_missing must be one of"):
        SignalVeto({"momentum": 0.5}, Fixed(0.1), {"momentum": "ignore"})
    by_strategy = ScorerByStrategy({"momentum": Fixed(0.7)})
    assert by_strategy.probability(signal()) == 0.7 and by_strategy.probability(signal("mean_reversion")) is None


def test_veto_rules_come_from_the_enabled_strategies_only() -> None:
    raw = AppConfig().model_dump()
    raw["strategies"]["momentum"]["veto"].update(enabled=True, threshold=0.55, on_missing_features="allow")
    thresholds, on_missing = veto_rules(AppConfig.model_validate(raw).strategies)
    assert thresholds == {"momentum": 0.55} and on_missing == {"momentum": "allow"}
