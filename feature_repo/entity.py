"""The entity of every feature view: the traded symbol (upper-case ticker, the project's ``symbols`` spelling)."""

from feast import Entity, ValueType

symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="upper-case ticker as in config.yaml symbols",
)
