"""Embedding cache: hits, misses, invalidation by model / preprocessing / pixels, atomic writes, damaged
entries, bad folders."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

import napari_p2sam.engine.cache as cache_module
from napari_p2sam import Settings, load_model
from napari_p2sam.engine.cache import CacheError, EmbeddingCache, encoder_key
from napari_p2sam.engine.embeddings import encode_image
from napari_p2sam.engine.pixels import image_key
from napari_p2sam.engine.propagate import propagate
from napari_p2sam.io.errors import settings_of

from .conftest import save_tiny_sam
from .test_download import read_only

FAST = Settings(method="persam")


@pytest.fixture
def frames():
    return np.random.default_rng(3).integers(0, 255, (4, 48, 64, 3), dtype=np.uint8)


@pytest.fixture
def references(frames):
    labels = np.zeros(frames.shape[:3], np.uint8)
    labels[0, 10:30, 20:40] = 1
    return labels


def encoded(model, frames, references, cache, settings=FAST, **options) -> int:
    run = propagate(model, frames, references, settings, cache=cache, **options)
    list(run)
    return run.encoded


def test_miss_then_hit_gives_the_same_features(small_model, frames, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    first = cache.embedding(small_model, frames[1])
    again = cache.embedding(small_model, frames[1])
    assert (cache.stats.misses, cache.stats.hits) == (1, 1)
    direct = encode_image(small_model, frames[1])
    assert torch.equal(again.features, direct.features) and torch.equal(first.features, direct.features)
    assert (again.input_size, again.original_size) == (direct.input_size, direct.original_size)


def test_one_chunk_per_frame_in_a_zarr_group(small_model, frames, tmp_path):
    cache = EmbeddingCache(tmp_path)
    for frame in frames[:3]:
        cache.embedding(small_model, frame)
    group = zarr.open_group(str(tmp_path / encoder_key(small_model)), mode="r")
    arrays = list(group.arrays())
    assert len(arrays) == 3
    for _, array in arrays:
        assert array.chunks == array.shape == (64, 16, 16)
    assert group.attrs["napari_p2sam"]["model"] == small_model.identity


def test_rerun_with_other_settings_encodes_nothing(small_model, frames, references, tmp_path):
    cache = EmbeddingCache(tmp_path)
    assert encoded(small_model, frames, references, cache) == 4
    other = Settings(variant="medical", parts=(1, 2), retrieval="sampled", retrieval_patches=32)
    assert encoded(small_model, frames, references, cache, settings=other) == 0


def test_one_changed_pixel_invalidates_that_frame_only(small_model, frames, references, tmp_path):
    cache = EmbeddingCache(tmp_path)
    encoded(small_model, frames, references, cache)
    frames = frames.copy()
    frames[2, 5, 5, 0] ^= 1
    assert encoded(small_model, frames, references, cache) == 1


def test_other_model_invalidates_and_keeps_the_first(small_model, frames, references, tmp_path):
    other = load_model(save_tiny_sam(tmp_path / "other.pth", seed=5, img_size=256, window_size=4), device="cpu")
    cache = EmbeddingCache(tmp_path / "cache")
    assert encoded(small_model, frames, references, cache) == 4
    assert encoded(other, frames, references, cache) == 4
    assert encoded(small_model, frames, references, cache) == 0


def test_preprocessing_invalidates(small_checkpoint, small_model, frames, references, tmp_path):
    cache = EmbeddingCache(tmp_path)
    encoded(small_model, frames, references, cache)
    minmax = load_model(small_checkpoint, device="cpu", normalization="minmax")
    assert encoded(minmax, frames, references, cache) == 4

    raw = np.random.default_rng(4).uniform(0, 4000, frames.shape[:3]).astype(np.uint16)
    assert encoded(small_model, raw, references, cache) == 4
    assert encoded(small_model, raw, references, cache) == 0
    assert encoded(small_model, raw, references, cache, limits=(0, 3000)) == 4
    assert encoded(small_model, frames, references, cache, channel=1) == 4


def test_a_killed_write_leaves_no_entry(small_model, frames, tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)

    def killed(_folder):
        raise KeyboardInterrupt  # the process dies after writing the data, before publishing it

    monkeypatch.setattr(cache_module, "_sync_tree", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.embedding(small_model, frames[0])
    monkeypatch.undo()
    group = tmp_path / encoder_key(small_model)
    leftovers = [p.name for p in group.iterdir() if p.is_dir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".writing-")
    assert cache.load(small_model, frames[0]) is None
    cache.embedding(small_model, frames[0])
    assert cache.load(small_model, frames[0]) is not None
    assert cache.clean(older_than_s=0) == 1
    assert cache.load(small_model, frames[0]) is not None


def test_damaged_entries_are_replaced_not_used(small_model, frames, tmp_path):
    cache = EmbeddingCache(tmp_path)
    good = cache.embedding(small_model, frames[0])
    (entry,) = [p for p in (tmp_path / encoder_key(small_model)).iterdir() if p.is_dir()]
    meta = json.loads((entry / "zarr.json").read_text())
    meta["attributes"]["napari_p2sam"]["signature"]["model"] = "another model"
    (entry / "zarr.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="damaged cache entry"):
        assert cache.load(small_model, frames[0]) is None
    cache.embedding(small_model, frames[0])
    (chunk,) = [p for p in entry.rglob("*") if p.is_file() and p.name != "zarr.json"]
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged cache entry"):
        again = cache.embedding(small_model, frames[0])
    assert torch.equal(again.features, good.features)
    assert cache.stats.misses == 3


def test_unwritable_cache_folder_is_refused_at_once(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    for folder in (blocker, blocker / "cache"):
        with pytest.raises(CacheError, match="cannot be written to.*choose another cache folder") as refused:
            EmbeddingCache(folder)
        assert settings_of(refused.value) == ("cache",)  # the command line adds --cache
    assert blocker.read_text() == "keep me"


def entry_of(folder: Path, model, frame: np.ndarray) -> Path:
    return folder / encoder_key(model) / image_key(frame)


def chunk_of(entry: Path) -> Path:
    """The one data chunk of a cache entry (zarr names it c/0/0/0)."""
    (chunk,) = [p for p in entry.rglob("*") if p.is_file() and p.name != "zarr.json"]
    return chunk


def delete_chunk(entries: list[Path]) -> list[Path]:
    chunk_of(entries[0]).unlink()
    return entries[:1]


def delete_metadata(entries: list[Path]) -> list[Path]:
    (entries[0] / "zarr.json").unlink()
    return entries[:1]


def flip_bytes(entries: list[Path]) -> list[Path]:
    chunk = chunk_of(entries[0])
    data = bytearray(chunk.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x5A for b in data[middle : middle + 16])
    chunk.write_bytes(bytes(data))
    return entries[:1]


def swap_chunks(entries: list[Path]) -> list[Path]:
    first, second = chunk_of(entries[0]), chunk_of(entries[1])
    first_bytes, second_bytes = first.read_bytes(), second.read_bytes()
    first.write_bytes(second_bytes)
    second.write_bytes(first_bytes)
    return entries[:2]


DAMAGES = [delete_chunk, delete_metadata, flip_bytes, swap_chunks]


def files_digest(folder: Path) -> dict[str, str]:
    """relative path → sha256 of every file under ``folder``."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def damage_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "damaged cache entry" in str(w.message)]


def assert_warned_once_each(messages: list[str], damaged: list[Path]) -> None:
    """One message per damaged entry, naming it."""
    named = sorted(str(entry) for message in messages for entry in damaged if str(entry) in message)
    assert len(messages) == len(damaged) and named == sorted(map(str, damaged)), messages


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_entry_is_reported_once_encoded_again_and_replaced(small_model, frames, tmp_path, damage):
    cache = EmbeddingCache(tmp_path)
    direct = [encode_image(small_model, frame) for frame in frames]
    for frame in frames:
        cache.embedding(small_model, frame)
    entries = [entry_of(tmp_path, small_model, frame) for frame in frames]
    damaged = damage(entries[1:3])
    untouched = {entry: files_digest(entry) for entry in entries if entry not in damaged}
    frames_before = hashlib.sha256(frames.tobytes()).hexdigest()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = [cache.embedding(small_model, frame) for frame in frames]
        again = [cache.embedding(small_model, frame) for frame in frames]

    for embedding, expected in zip(first + again, direct + direct, strict=True):
        assert torch.equal(embedding.features, expected.features)
        assert (embedding.input_size, embedding.original_size) == (expected.input_size, expected.original_size)
    assert_warned_once_each(damage_warnings(caught), damaged)
    assert cache.stats.misses == len(frames) + len(damaged), "each damaged entry encoded once, then read again"
    assert all(cache.load(small_model, frames[entries.index(e)]) is not None for e in damaged), "replaced on disk"
    assert {entry: files_digest(entry) for entry in untouched} == untouched, "the other entries were not rewritten"
    assert hashlib.sha256(frames.tobytes()).hexdigest() == frames_before
    assert not [p for p in (tmp_path / encoder_key(small_model)).iterdir() if p.name.startswith(".")], "no leftovers"


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_run_over_a_damaged_cache_gives_the_uncached_result(small_model, frames, references, tmp_path, damage):
    uncached = [result.labels for result in propagate(small_model, frames, references, FAST)]
    cache = EmbeddingCache(tmp_path)
    for frame in frames:
        cache.embedding(small_model, frame)
    damaged = damage([entry_of(tmp_path, small_model, frame) for frame in frames[1:3]])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = propagate(small_model, frames, references, FAST, cache=cache)
        labels = [result.labels for result in run]
    assert all(np.array_equal(a, b) for a, b in zip(labels, uncached, strict=True))
    assert run.encoded == len(damaged)
    assert_warned_once_each(damage_warnings(caught), damaged)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert encoded(small_model, frames, references, cache) == 0, "the replaced entries are hits again"
    assert damage_warnings(caught) == []


def test_a_damaged_entry_that_cannot_be_removed_stops_the_run_naming_it(small_model, frames, tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.embedding(small_model, frames[0])
    entry = entry_of(tmp_path, small_model, frames[0])
    flip_bytes([entry])
    before = files_digest(tmp_path)
    with read_only(entry.parent):
        with pytest.warns(UserWarning, match="damaged cache entry"):
            with pytest.raises(CacheError, match=f"cannot remove the damaged cache entry {entry} \\(.*\\); delete it"):
                cache.embedding(small_model, frames[0])
    assert files_digest(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_folder_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(CacheError, match="Permission denied"):
            EmbeddingCache(tmp_path)
    finally:
        tmp_path.chmod(0o700)
