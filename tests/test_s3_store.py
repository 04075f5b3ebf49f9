"""A store on S3: a real S3 API (moto's standalone server on loopback) through s3fs.

Nothing is mocked inside plait or fsspec: the store talks HTTP to the server like it would to
AWS, with an ``endpoint_url`` in its storage options.
"""

from __future__ import annotations

import pytest

from plait import Pipeline, Store
from store_cases import CALLS, REMOTE_EXPECTED, Blob, remote_steps


@pytest.fixture
def s3(s3_bucket):
    """A fresh bucket, and a boto3 client to look inside it."""
    CALLS.reset()
    return s3_bucket


def _store(endpoint, bucket):
    return Store(
        f"s3://{bucket}/runs/cache",
        storage_options={
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            "skip_instance_cache": True,  # every Store gets its own client, like a new process
        },
    )


def _keys(client, bucket, prefix):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


STEPS = remote_steps()
EXPECTED = REMOTE_EXPECTED


def _run(endpoint, bucket, **kwargs):
    return Pipeline(STEPS).run(params={"n": 4}, store=_store(endpoint, bucket), **kwargs)


def test_first_run_computes_and_second_run_hits(endpoint, s3):
    client, bucket = s3
    first = _run(endpoint, bucket)
    assert first.outputs == EXPECTED
    assert not any(record.cached for record in first.steps.values())
    objects = _keys(client, bucket, "runs/cache/")
    assert any(key.startswith("runs/cache/objects/") for key in objects)
    second = _run(endpoint, bucket)
    assert all(record.cached for record in second.steps.values())
    assert second.outputs == EXPECTED
    assert type(second["raw"]["pair"]) is tuple
    assert CALLS["raw"] == CALLS["summary"] == 1


def test_a_changed_param_reruns_on_s3(endpoint, s3):
    _, bucket = s3
    _run(endpoint, bucket)
    result = Pipeline(STEPS).run(params={"n": 5}, store=_store(endpoint, bucket))
    assert result["summary"] == Blob(10)
    assert CALLS["raw"] == CALLS["summary"] == 2


@pytest.mark.parametrize("damage", [b"garbage", b""], ids=["garbage", "empty"])
def test_a_corrupted_object_is_recomputed(endpoint, s3, damage):
    client, bucket = s3
    _run(endpoint, bucket)
    artifacts = _keys(client, bucket, "runs/cache/objects/")
    assert len(artifacts) == 2
    for key in artifacts:
        client.put_object(Bucket=bucket, Key=key, Body=damage)
    CALLS.reset()
    result = _run(endpoint, bucket)
    assert result.outputs == EXPECTED
    assert CALLS["raw"] == CALLS["summary"] == 1
    CALLS.reset()
    healed = _run(endpoint, bucket)
    assert healed.outputs == EXPECTED
    assert CALLS.total() == 0


def test_a_deleted_object_is_recomputed(endpoint, s3):
    client, bucket = s3
    _run(endpoint, bucket)
    for key in _keys(client, bucket, "runs/cache/objects/"):
        client.delete_object(Bucket=bucket, Key=key)
    CALLS.reset()
    result = _run(endpoint, bucket)
    assert result.outputs == EXPECTED
    assert CALLS["raw"] == CALLS["summary"] == 1


def test_requested_outputs_load_lazily_from_s3(endpoint, s3):
    _, bucket = s3
    _run(endpoint, bucket)
    CALLS.reset()
    result = _run(endpoint, bucket, outputs=["summary"])
    assert result.outputs == {"summary": Blob(6)}
    assert CALLS.total() == 0


def test_a_damaged_entry_is_a_miss(endpoint, s3):
    client, bucket = s3
    _run(endpoint, bucket)
    everything = set(_keys(client, bucket, "runs/cache/"))
    artifacts = set(_keys(client, bucket, "runs/cache/objects/"))
    damaged = [key for key in everything - artifacts if key.endswith(".json")]
    assert damaged
    for key in damaged:
        client.put_object(Bucket=bucket, Key=key, Body=b"{not json")
    CALLS.reset()
    result = _run(endpoint, bucket)
    assert result.outputs == EXPECTED
    assert CALLS["raw"] == CALLS["summary"] == 1
