"""Core: events, dispatcher, clock, errors and configuration shared by every process."""
