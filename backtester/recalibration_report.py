"""The pass/fail table a person reads after a recalibration, on the terminal and in report.html."""

from __future__ import annotations

import html
from pathlib import Path

from rich.console import Console
from rich.table import Table

from backtester.recalibration import RecalibrationOutcome
from backtester.report_charts import line_chart
from backtester.report_page import header_html, section, write_page


def print_verdicts(outcome: RecalibrationOutcome, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{outcome.strategy} recalibration: mandate")
    for column in ("rule", "value", "threshold", "verdict"):
        table.add_column(column)
    for v in outcome.verdicts:
        value = "n/a" if v.value is None else f"{v.value:.4g}"
        table.add_row(v.rule, value, f"{v.threshold:g}", "[green]PASS[/green]" if v.passed else "[red]FAIL[/red]")
    console.print(table)
    failed = [v.rule for v in outcome.verdicts if not v.passed]
    if outcome.promoted:
        console.print(f"promoted {outcome.params} -> {outcome.summary['approved_params_path']}")
    elif outcome.passed:
        console.print("all rules passed; --dry-run: nothing promoted")
    else:
        kept = "the previously approved params are kept" if outcome.previous_approved else "no params are approved"
        console.print(f"not promoted: failed {', '.join(failed)}; {kept}", soft_wrap=True)


def write_recalibration_report(path: Path, outcome: RecalibrationOutcome) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(v.rule)}</td><td>{html.escape(v.message)}</td>"
        f'<td class="{"pos" if v.passed else "neg"}">{"PASS" if v.passed else "FAIL"}</td></tr>'
        for v in outcome.verdicts
    )
    status = "promoted" if outcome.promoted else ("passed (dry run)" if outcome.passed else "not promoted")
    wf = outcome.outputs["walk_forward"]
    body = "\n".join(
        [
            header_html(outcome.summary, wf.series["oos_equity"], kicker="Recalibration"),
            section(
                f"Mandate: {status}",
                f'<table class="data"><thead><tr><th>rule</th><th>measured</th>'
                f"<th>verdict</th></tr></thead><tbody>{rows}</tbody></table>",
            ),
            section(
                "Out-of-sample equity",
                line_chart(wf.series["oos_equity"], div_id="equity-chart", name="Walk-forward out-of-sample equity"),
            ),
        ]
    )
    write_page(path, f"{outcome.strategy} · recalibration", body)
