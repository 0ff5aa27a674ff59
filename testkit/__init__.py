"""testkit package."""
