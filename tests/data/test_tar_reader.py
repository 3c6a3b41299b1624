"""The lean tar reader agrees with tarfile, long names included, and the shards stay standard tars."""

import io
import tarfile

import pytest

from adaptcli.data.prepare.encode import Encoded
from adaptcli.data.prepare.shard_writer import ShardWriter
from adaptcli.data.stream.tar_reader import BadShard, iter_members, iter_samples, split_name


def test_reader_matches_tarfile_with_long_names(tmp_path):
    long_key = "class_" + "x" * 150 + "/clip"
    samples = [Encoded("a/b/1", [("000.jpg", b"one"), ("cls", b"3")]),
               Encoded(long_key, [("000.jpg", b"\x00" * 1000), ("json", b"{}")])]
    with ShardWriter(tmp_path / "s.tar") as writer:
        for sample in samples:
            writer.add(sample)
    with tarfile.open(tmp_path / "s.tar") as tar:
        expected = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    assert list(iter_members(tmp_path / "s.tar")) == expected
    got = list(iter_samples(tmp_path / "s.tar"))
    assert [g["__key__"] for g in got] == ["a/b/1", long_key]
    assert got[0]["cls"] == b"3" and got[1]["000.jpg"] == b"\x00" * 1000


def test_reader_reads_pax_and_ustar_tars(tmp_path):
    for fmt in (tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT):
        path = tmp_path / f"{fmt}.tar"
        with tarfile.open(path, "w", format=fmt) as tar:
            for name in ("k1.jpg", "dir/" + "d" * 90 + "/k2.cls"):
                info = tarfile.TarInfo(name)
                info.size = 2
                tar.addfile(info, io.BytesIO(b"hi"))
        assert [n for n, _ in iter_members(path)] == ["k1.jpg", "dir/" + "d" * 90 + "/k2.cls"]


def test_truncated_shard_raises(tmp_path):
    with ShardWriter(tmp_path / "s.tar") as writer:
        writer.add(Encoded("k", [("jpg", b"x" * 5000)]))
    data = (tmp_path / "s.tar").read_bytes()
    (tmp_path / "t.tar").write_bytes(data[:3000])
    with pytest.raises(BadShard):
        list(iter_members(tmp_path / "t.tar"))


def test_split_name():
    assert split_name("a/b.c/123.004.jpg") == ("a/b.c/123", "004.jpg")
    assert split_name("key.cls") == ("key", "cls")
