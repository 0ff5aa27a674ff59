"""The port every executor implements; the rest of the code knows only this Protocol."""

from __future__ import annotations

from typing import Protocol

from core.events import OrderEvent


class OrderRouter(Protocol):
    def submit(self, order: OrderEvent) -> None: ...

    def cancel(self, client_order_id: str, reason: str) -> None: ...

    def cancel_all(self, reason: str) -> None: ...
