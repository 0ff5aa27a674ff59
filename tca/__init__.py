"""Transaction cost analysis: execution records, their staging file, the DuckDB log, shortfall and the report.

Re-exports only. The live engine appends records to the staging file (``tca.staging``) and never opens DuckDB;
the nightly ETL (or an operator) loads the staging file into ``results/tca_log.duckdb`` (``tca.logger``); the
backtester writes its records there directly. ``tca.calculator`` and ``tca.report`` read the log.
"""

from tca.records import Algo, ExecutionRecord, SessionClose, Source, UnfilledRecord

__all__ = ["Algo", "ExecutionRecord", "SessionClose", "Source", "UnfilledRecord"]
