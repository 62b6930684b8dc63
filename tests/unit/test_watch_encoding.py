"""A watch event is encoded once for all the watches that send it."""

from __future__ import annotations

import orjson

from kinns.api.http import EncodedEvents


def test_the_same_event_is_encoded_once_and_reads_as_json() -> None:
    enc = EncodedEvents()
    pod = {"metadata": {"name": "web", "resourceVersion": "5"}}
    a = enc.encode({"type": "ADDED", "object": pod})
    b = enc.encode({"type": "ADDED", "object": pod})
    assert a is b and orjson.loads(a) == {"type": "ADDED", "object": pod} and a.endswith(b"\n")
    # Another type for the same object (a watcher whose selector it left) is its own line.
    assert orjson.loads(enc.encode({"type": "DELETED", "object": pod}))["type"] == "DELETED"


def test_a_new_object_is_encoded_anew_and_the_cache_stays_bounded() -> None:
    enc = EncodedEvents(size=2)
    first = {"metadata": {"resourceVersion": "1"}}
    enc.encode({"type": "MODIFIED", "object": first})
    newer = {"metadata": {"resourceVersion": "2"}}
    assert orjson.loads(enc.encode({"type": "MODIFIED", "object": newer}))["object"] == newer
    for i in range(10):
        enc.encode({"type": "MODIFIED", "object": {"metadata": {"resourceVersion": str(i)}}})
    assert len(enc._cache) == 2


def test_other_items_are_encoded_as_they_are() -> None:
    enc = EncodedEvents()
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}, "extra": 1}
    assert orjson.loads(enc.encode(bookmark)) == bookmark and not enc._cache
