"""TWS socket framing and field encoding at server version 157, as the pinned ``ibapi`` 9.81.1 reads it.

Kept free of any meaning: bytes in, lists of text fields out, and back. The rules (see
``docs/ib-protocol.md`` sections 1-2) that matter most: every field ends in NUL, the last one too, or the
client silently drops it; ints must be plain decimal; "unset" floats in plain float fields are written as
TWS writes them.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable

log = logging.getLogger(__name__)

SERVER_VERSION = 157
MAX_PAYLOAD_BYTES = 0xFFFFFF
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
_UNSET_THRESHOLD = 1e308
HELLO_PREFIX = b"API\0"

Field = str | int | float | bool | None


class FramingError(ValueError):
    """The peer sent bytes that cannot be a TWS frame; the connection should be closed."""


def encode_field(value: Field) -> str:
    """One outgoing field as text (without its NUL): bools as 0/1, None as empty, floats via ``repr``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value != value or value >= _UNSET_THRESHOLD:
            return UNSET_DOUBLE_TEXT
        return repr(value)
    return str(value)


def frame(fields: Iterable[Field]) -> bytes:
    """A length-prefixed payload of NUL-terminated fields, ready for the socket."""
    payload = "".join(encode_field(f) + "\0" for f in fields).encode("ascii", errors="replace")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FramingError(f"payload of {len(payload)} bytes exceeds the 0xFFFFFF limit of the client")
    return struct.pack(">I", len(payload)) + payload


def frame_raw(text: str) -> bytes:
    """A framed payload without field terminators (only the server-version hello reply uses fields)."""
    payload = text.encode("ascii")
    return struct.pack(">I", len(payload)) + payload


class FrameBuffer:
    """Accumulates socket reads and yields complete payloads; frames may arrive split or several per read."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf.extend(data)

    def pending_bytes(self) -> int:
        return len(self._buf)

    def take_prefix(self, prefix: bytes) -> bool:
        """Consume ``prefix`` if the buffer starts with it (the ``API\\0`` hello); False if not yet complete."""
        if len(self._buf) < len(prefix):
            if not prefix.startswith(bytes(self._buf)):
                raise FramingError(f"expected {prefix!r} hello, got {bytes(self._buf)!r}")
            return False
        if bytes(self._buf[: len(prefix)]) != prefix:
            raise FramingError(f"expected {prefix!r} hello, got {bytes(self._buf[: len(prefix)])!r}")
        del self._buf[: len(prefix)]
        return True

    def next_payload(self) -> bytes | None:
        """The next complete payload, or None when more bytes are needed."""
        if len(self._buf) < 4:
            return None
        (size,) = struct.unpack(">I", self._buf[:4])
        if size > MAX_PAYLOAD_BYTES:
            raise FramingError(f"frame length {size} exceeds 0xFFFFFF; not a TWS client")
        if len(self._buf) < 4 + size:
            return None
        payload = bytes(self._buf[4 : 4 + size])
        del self._buf[: 4 + size]
        return payload


def split_fields(payload: bytes) -> list[str]:
    """Payload → text fields. Clients terminate every field with NUL; text after the last NUL is kept too."""
    text = payload.decode("ascii", errors="replace")
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


class FieldReader:
    """Cursor over the fields of one client message; numbers are parsed leniently (``""`` and ≥1e308 = unset).

    Raises ``IndexError`` when a message is shorter than its layout and ``ValueError`` on non-numbers; the
    server catches both per message, logs and carries on.
    """

    def __init__(self, fields: list[str], start: int = 0) -> None:
        self._fields = fields
        self.pos = start

    def remaining(self) -> int:
        return len(self._fields) - self.pos

    def str(self) -> str:
        value = self._fields[self.pos]
        self.pos += 1
        return value

    def skip(self, n: int = 1) -> None:
        if self.pos + n > len(self._fields):
            raise IndexError(f"message ends at field {len(self._fields)}, need {self.pos + n}")
        self.pos += n

    def int(self, default: int = 0) -> int:
        text = self.str().strip()
        if text == "":
            return default
        value = float(text)
        if value >= _UNSET_THRESHOLD or value == 2147483647:
            return default
        return int(value)

    def float_or_none(self) -> float | None:
        text = self.str().strip()
        if text == "":
            return None
        value = float(text)
        return None if value >= _UNSET_THRESHOLD else value

    def float(self, default: float = 0.0) -> float:
        value = self.float_or_none()
        return default if value is None else value

    def bool(self) -> bool:
        return self.int(0) != 0
