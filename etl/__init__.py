"""Batch jobs that move data into the bar store (daily IB history)."""
