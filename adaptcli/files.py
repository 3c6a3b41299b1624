"""Every file adaptcli reads from a dataset, a shard folder or an option is first checked to be a regular
file of bounded size: a FIFO would block the read forever, a link to ``/dev/zero`` would never end.

:func:`regular_file` checks (following links, as the read will), :func:`read_bounded` reads at most the
bound, :func:`open_regular` opens without blocking on a FIFO that appeared in between.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

#: A JSON or CSV file adaptcli reads whole (manifests, summaries, results, lists, label files).
MAX_TEXT_BYTES = 256 << 20
#: One image file read whole by ``prepare``.
MAX_IMAGE_BYTES = 512 << 20
#: Values (scalars, lists, mappings) a YAML document may hold once its aliases are followed; a recipe
#: holds a few hundred, nine nested aliases of nine ("billion laughs") a billion.
MAX_YAML_VALUES = 100_000


class NotRegularFile(OSError):
    """A path that is not a regular file, or one larger than the bound it is read with."""


def regular_file(path: str | Path, max_bytes: int | None = None) -> int:
    """The size of ``path``; :class:`NotRegularFile` when it is a FIFO, device, socket or folder, or larger
    than ``max_bytes`` (``FileNotFoundError`` and permission errors as the OS raises them)."""
    info = os.stat(path)  # follows links: what a read would reach
    if not stat.S_ISREG(info.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode)
                else "a device or socket")
        raise NotRegularFile(f"{path} is {kind}, not a regular file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise NotRegularFile(f"{path} is {info.st_size:,} bytes, more than the {max_bytes:,} adaptcli reads from "
                             "such a file")
    return info.st_size


def open_regular(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading after :func:`regular_file`; ``O_NONBLOCK`` so that a FIFO swapped in after
    the check cannot block the open (the opened file is checked again)."""
    regular_file(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a regular file's bytes, read in blocks (:func:`open_regular`: a FIFO never blocks)."""
    sha = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def read_bounded(path: str | Path, max_bytes: int) -> bytes:
    """The whole of a regular file of at most ``max_bytes`` bytes."""
    regular_file(path, max_bytes)
    with open_regular(path) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise NotRegularFile(f"{path} grew past {max_bytes:,} bytes while it was read")
    return data


def read_text_bounded(path: str | Path, max_bytes: int = MAX_TEXT_BYTES, encoding: str = "utf-8") -> str:
    """:func:`read_bounded` of a text file (``UnicodeDecodeError`` when it is not in ``encoding``)."""
    return read_bounded(path, max_bytes).decode(encoding)


def read_json(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """The parsed JSON of a bounded regular file; ``ValueError`` naming the file when it is not valid
    UTF-8 JSON (``OSError`` as the OS raises it, :class:`NotRegularFile` for special or huge files)."""
    try:
        return parse_json(read_text_bounded(path, max_bytes))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{Path(path).name} is not valid JSON ({exc})") from None


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` whose nesting too deep for Python is a ``ValueError`` like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


class UnboundedYaml(ValueError):
    """A YAML document whose aliases expand past :data:`MAX_YAML_VALUES` values or refer to themselves."""


def _expanded_values(root: Any) -> int:
    """How many values the node graph ``root`` becomes once every alias is copied out (a shared node is
    counted each time it is referred to, yet visited once); :class:`UnboundedYaml` past the bound."""
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise UnboundedYaml("an alias refers to the value that holds it, so it never ends; remove that alias")
        open_nodes.add(key)
        children = (node.value if isinstance(node, yaml.SequenceNode)
                    else [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode)
                    else [])
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_VALUES:
                raise UnboundedYaml(f"its aliases expand to more than {MAX_YAML_VALUES:,} values; write the values "
                                    "out instead")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` of ``text``, refusing what would not fit in memory once built or printed: aliases
    that expand past :data:`MAX_YAML_VALUES` values ("billion laughs"), an alias inside its own value, or
    nesting too deep for Python (:class:`UnboundedYaml`; bad YAML raises ``yaml.YAMLError`` as before)."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_values(node)
        return loader.construct_document(node)
    except RecursionError:
        raise UnboundedYaml("it is nested too deeply for Python to read; flatten it") from None
    finally:
        loader.dispose()


__all__ = ["MAX_IMAGE_BYTES", "MAX_TEXT_BYTES", "MAX_YAML_VALUES", "NotRegularFile", "UnboundedYaml",
           "open_regular", "parse_json", "parse_yaml", "read_bounded", "read_json", "read_text_bounded",
           "regular_file"]
