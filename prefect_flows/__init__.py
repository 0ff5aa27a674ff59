"""The nightly feature pipeline: plain step functions (``steps``), their order (``pipeline``) and the Prefect flow
with its CLI (``nightly_feature_pipeline``). Only this package imports ``prefect``."""
