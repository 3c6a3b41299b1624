"""TFRecord files and the ``tf.train.Example`` records in them, read without TensorFlow.

A record is ``uint64 length | uint32 masked CRC32C of the length | data | uint32 masked CRC32C of the
data`` (little-endian). Every length is checked against a bound before anything is read and both
CRCs are verified: a damaged record is reported with its reason, never read past. ``data`` of a TFDS
record is a serialised ``tf.train.Example``; :func:`parse_example` reads that protobuf and gives the
bytes features as positions in ``data``, so a reader can point at an image inside the file instead of
holding it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from adaptcli.files import MAX_IMAGE_BYTES, open_regular

#: The largest record read: an image of at most MAX_IMAGE_BYTES plus its other features.
MAX_RECORD_BYTES = MAX_IMAGE_BYTES + (1 << 20)
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes | memoryview) -> int:
    """TFRecord's checksum: CRC32C rotated right by 15 bits plus a constant."""
    import google_crc32c

    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass
class Record:
    """One record of a file: ``data`` (None when damaged, then ``problem`` says why) starts at byte
    ``offset`` of the file; ``index`` is its position in the file."""

    index: int
    offset: int
    data: bytes | None
    problem: str | None = None


def _read_exact(handle: BinaryIO, size: int) -> bytes | None:
    chunk = handle.read(size)
    return chunk if len(chunk) == size else None


def read_records(path: str | Path, wanted: Callable[[int], bool] | None = None) -> Iterator[Record]:
    """Every record of ``path`` in order. A damaged data CRC or an oversized record is yielded as
    damaged and reading goes on (its length is known good); a damaged length or a cut-off end is
    yielded as damaged and ends the file (nothing after it can be located). Records whose index
    ``wanted`` refuses are stepped over unread (their length is still checked) and not yielded."""
    with open_regular(path) as handle:
        index = 0
        while True:
            start = handle.tell()
            head = handle.read(12)
            if not head:
                return
            if len(head) < 12:
                yield Record(index, start, None, f"file ends inside a record header at byte {start:,}")
                return
            length, length_crc = struct.unpack("<QI", head)
            if masked_crc32c(head[:8]) != length_crc:
                yield Record(index, start, None, f"length CRC mismatch at byte {start:,}: the rest of the file "
                             "cannot be located")
                return
            if wanted is not None and not wanted(index):
                handle.seek(length + 4, 1)
            elif length > MAX_RECORD_BYTES:
                handle.seek(length + 4, 1)
                yield Record(index, start + 12, None, f"record of {length:,} bytes (more than {MAX_RECORD_BYTES:,})")
            else:
                data = _read_exact(handle, length)
                tail = _read_exact(handle, 4) if data is not None else None
                if data is None or tail is None:
                    yield Record(index, start + 12, None, f"file ends inside the record at byte {start:,}")
                    return
                if masked_crc32c(data) != struct.unpack("<I", tail)[0]:
                    yield Record(index, start + 12, None, "data CRC mismatch")
                else:
                    yield Record(index, start + 12, data)
            index += 1


# --- tf.train.Example: Example{1: Features{1: map<string, Feature>}},
#     Feature{1: BytesList{1: bytes*}, 2: FloatList{1: float*}, 3: Int64List{1: int64*}}

@dataclass
class Feature:
    """One feature of an Example: ``spans`` (start, end) of each bytes value in the record's data,
    or its ``floats`` or ``ints``."""

    spans: list[tuple[int, int]]
    floats: list[float]
    ints: list[int]


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("a varint runs past its field")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or start, end) of each field in ``data[start:end]``."""
    pos = start
    while pos < end:
        tag, pos = _varint(data, pos, end)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos, end)
            yield number, wire, value, pos
        elif wire == 2:
            size, pos = _varint(data, pos, end)
            if pos + size > end:
                raise ValueError("a field runs past its message")
            yield number, wire, pos, pos + size
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ValueError("a field runs past its message")
            yield number, wire, pos, pos + size
            pos += size
        else:
            raise ValueError(f"wire type {wire} is not in a tf.train.Example")


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _feature(data: bytes, start: int, end: int) -> Feature:
    feature = Feature([], [], [])
    for kind, wire, a, b in _fields(data, start, end):
        if wire != 2:
            continue
        for number, inner_wire, x, y in _fields(data, a, b):
            if number != 1:
                continue
            if kind == 1 and inner_wire == 2:
                feature.spans.append((x, y))
            elif kind == 2 and inner_wire == 2:  # packed floats
                if (y - x) % 4:
                    raise ValueError("a packed float list is not a whole number of floats")
                feature.floats += list(struct.unpack(f"<{(y - x) // 4}f", data[x:y]))
            elif kind == 2 and inner_wire == 5:
                feature.floats.append(struct.unpack("<f", data[x:y])[0])
            elif kind == 3 and inner_wire == 2:  # packed int64s
                pos = x
                while pos < y:
                    value, pos = _varint(data, pos, y)
                    feature.ints.append(_signed(value))
            elif kind == 3 and inner_wire == 0:
                feature.ints.append(_signed(x))
    return feature


def parse_example(data: bytes) -> dict[str, Feature]:
    """The features of a serialised ``tf.train.Example`` (ValueError when it is not one)."""
    features: dict[str, Feature] = {}
    for number, wire, a, b in _fields(data, 0, len(data)):
        if number != 1 or wire != 2:
            continue
        for entry_number, entry_wire, c, d in _fields(data, a, b):
            if entry_number != 1 or entry_wire != 2:
                continue
            key, value = None, None
            for field_number, field_wire, x, y in _fields(data, c, d):
                if field_number == 1 and field_wire == 2:
                    key = data[x:y].decode("utf-8")
                elif field_number == 2 and field_wire == 2:
                    value = _feature(data, x, y)
            if key is not None:
                features[key] = value or Feature([], [], [])
    return features


__all__ = ["MAX_RECORD_BYTES", "Feature", "Record", "masked_crc32c", "parse_example", "read_records"]
