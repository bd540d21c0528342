#!/usr/bin/env python3
"""Draws images/icon.png (128 x 128), the extension's icon: lines of code on a dark tile, the last one finished
in ghost text. Plain zlib PNG writing, so that it needs nothing beyond Python: `python3 images/make_icon.py`."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIZE = 128
TILE, TEXT, GHOST, CURSOR = (30, 41, 74), (222, 228, 240), (112, 128, 168), (120, 200, 255)
# (row from the top, first column, last column, colour): three typed lines, a cursor, the ghost text after it
BARS = [(30, 22, 78, TEXT), (50, 34, 100, TEXT), (70, 34, 62, TEXT), (70, 66, 69, CURSOR), (70, 74, 106, GHOST),
        (90, 34, 90, GHOST)]  # fmt: skip
BAR_HEIGHT = 9
RADIUS = 22


def pixel(x: int, y: int) -> tuple[int, int, int, int]:
    # the tile's rounded corners: transparent outside the quarter circles
    cx = min(max(x, RADIUS), SIZE - 1 - RADIUS)
    cy = min(max(y, RADIUS), SIZE - 1 - RADIUS)
    if (x - cx) ** 2 + (y - cy) ** 2 > RADIUS**2:
        return (0, 0, 0, 0)
    for top, left, right, colour in BARS:
        height = BAR_HEIGHT + (8 if colour == CURSOR else 0)
        start = top - (4 if colour == CURSOR else 0)
        if start <= y < start + height and left <= x <= right:
            return (*colour, 255)
    return (*TILE, 255)


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main() -> None:
    rows = [bytes(v for x in range(SIZE) for v in pixel(x, y)) for y in range(SIZE)]
    (Path(__file__).resolve().parent / "icon.png").write_bytes(png(SIZE, SIZE, rows))


if __name__ == "__main__":
    main()
