"""backtester package."""
