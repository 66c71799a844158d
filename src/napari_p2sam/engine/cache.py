"""Image embeddings on disk, so each frame is encoded once per model and preprocessing.

Layout (a zarr v3 hierarchy)::

    CACHE/<encoder key>/            a group: one model, its input normalisation and precision
        zarr.json                   group attributes: model identity, normalisation, encoder size, precision
        <pixel hash>/               one array per frame: (256, 64, 64) float32, one chunk
            zarr.json               attributes: the full signature, input and original size

An entry is found by its signature: the hash of the exact ``(H, W, 3)``
uint8 RGB fed to SAM (so the channel choice and the intensity mapping are
part of it), the model's identity (sha256 of its weights), its input
normalisation, encoder size and precision (fp32 embeddings are never served
to a bf16 run, nor the reverse). The signature stored in the entry is
compared before reuse. Entries are content-addressed, so the same frame
reused in another stack or at another index is found too, and one changed
pixel misses that frame only.

Every entry carries a checksum (blake2b) of its signature, sizes and
features, verified on each read: a chunk that is missing (zarr would read
zeros), changed or swapped from another entry is never used. A damaged entry
is reported once (a warning naming it), moved out of the way, and the frame
is encoded again and stored anew.

Writes are atomic: an entry is written under a temporary name in the group
and renamed into place when complete (a rename of a folder on one file
system is atomic), so a killed run leaves either a whole entry or none.
Leftover temporary folders are never read; :meth:`EmbeddingCache.clean` removes old ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io.errors import for_settings
from ..models.loading import SamModel
from .embeddings import ImageEmbedding, encode_images
from .pixels import image_key

FORMAT_VERSION = 2
"""Bump when the meaning of a stored embedding changes; older entries are then never reused.

2: every entry carries a checksum of its content."""
_TEMP_PREFIX = ".writing-"


class CacheError(OSError):
    """A cache folder that cannot be used, with what to do about it."""


def encoder_signature(model: SamModel) -> dict:
    """What, besides the pixels, decides an embedding: model weights, normalisation, encoder size and precision."""
    return {
        "format": FORMAT_VERSION,
        "model": model.identity,
        "normalization": model.normalization,
        "img_size": int(model.sam.image_encoder.img_size),
        "precision": model.precision,
    }


def encoder_key(model: SamModel) -> str:
    text = json.dumps(encoder_signature(model), sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def entry_checksum(record: dict, features: np.ndarray) -> str:
    """blake2b (32 hex digits) of an entry's ``record`` (signature and sizes) and its ``(C, h, w)`` float32 features."""
    digest = hashlib.blake2b(json.dumps(record, sort_keys=True).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(features, dtype=np.float32).data)
    return digest.hexdigest()


@dataclass
class CacheStats:
    """Counts for this cache object: ``hits`` reused, ``misses`` encoded (and written)."""

    hits: int = 0
    misses: int = 0


class EmbeddingCache:
    """A folder of embeddings (see the module docstring); created if missing.

    Raises :class:`CacheError` at once if the folder cannot be created or
    written to.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.stats = CacheStats()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise for_settings(
                CacheError(
                    f"the cache folder {self.folder} cannot be written to ({err.strerror or err}); "
                    "choose another cache folder or fix its permissions"
                ),
                "cache",
            ) from None

    def group(self, model: SamModel) -> Path:
        """The model's group folder (created with its zarr metadata on first use)."""
        import zarr

        path = self.folder / encoder_key(model)
        if not (path / "zarr.json").is_file():
            zarr.open_group(str(path), mode="a", attributes={"napari_p2sam": encoder_signature(model)})
        return path

    def load(self, model: SamModel, image_rgb: np.ndarray) -> ImageEmbedding | None:
        """The cached embedding of ``image_rgb`` for ``model``, or None.

        An entry whose signature or checksum does not match, or that cannot
        be read, is removed with a warning (it is then encoded again).
        """
        import zarr

        key = image_key(image_rgb)
        path = self.folder / encoder_key(model) / key
        if not path.exists():
            return None
        expected = {**encoder_signature(model), "pixels": key}
        try:
            array = zarr.open_array(str(path), mode="r")
            record = dict(array.attrs["napari_p2sam"])
            checksum = record.pop("checksum", None)
            if record.get("signature") != expected:
                raise ValueError("its signature does not match its pixels and model")
            features = np.asarray(array[...])
            if entry_checksum(record, features) != checksum:
                raise ValueError(
                    "its content does not match its checksum: a chunk is missing, changed or another entry's"
                )
            input_size, original_size = tuple(record["input_size"]), tuple(record["original_size"])
        except Exception as err:  # any damage to an entry means the same: encode the frame again
            warnings.warn(
                f"removed the damaged cache entry {path} ({err}); the frame is encoded again and stored anew",
                stacklevel=2,
            )
            _remove(path)
            return None
        return ImageEmbedding(torch.from_numpy(features)[None].to(model.device), input_size, original_size)

    def save(self, model: SamModel, image_rgb: np.ndarray, embedding: ImageEmbedding) -> None:
        """Store ``embedding`` atomically (an existing complete entry is kept)."""
        import zarr

        key = image_key(image_rgb)
        group = self.group(model)
        final = group / key
        if final.exists():
            return
        temp = group / f"{_TEMP_PREFIX}{key}-{uuid.uuid4().hex}"
        features = embedding.features[0].detach().to("cpu", torch.float32).numpy()
        record = {
            "signature": {**encoder_signature(model), "pixels": key},
            "input_size": list(embedding.input_size),
            "original_size": list(embedding.original_size),
        }
        attributes = {"napari_p2sam": {**record, "checksum": entry_checksum(record, features)}}
        try:
            array = zarr.create_array(
                str(temp), shape=features.shape, chunks=features.shape, dtype="float32", attributes=attributes
            )
            array[...] = features
            _sync_tree(temp)
            os.rename(temp, final)
        except OSError as err:
            shutil.rmtree(temp, ignore_errors=True)
            if final.exists():  # another process wrote the same entry first
                return
            raise CacheError(f"cannot write to the cache folder {self.folder} ({err.strerror or err})") from None

    def embedding(self, model: SamModel, image_rgb: np.ndarray) -> ImageEmbedding:
        """The embedding of ``image_rgb``: from the cache, else encoded and stored."""
        return self.embeddings(model, [image_rgb])[0]

    def embeddings(self, model: SamModel, images_rgb: list[np.ndarray]) -> list[ImageEmbedding]:
        """The embedding of each image, in order: from the cache, else encoded (all misses in one batch) and stored.

        An image repeated in the batch is encoded once, as one after the other would be.
        """
        keys = [image_key(image) for image in images_rgb]
        found = {key: self.load(model, image) for key, image in zip(keys, images_rgb)}
        missing = {key: image for key, image in zip(keys, images_rgb) if found[key] is None}
        if missing:
            for (key, image), embedding in zip(missing.items(), encode_images(model, list(missing.values()))):
                self.save(model, image, embedding)
                found[key] = embedding
        self.stats.hits += len(images_rgb) - len(missing)
        self.stats.misses += len(missing)
        return [found[key] for key in keys]

    def clean(self, older_than_s: float = 3600.0) -> int:
        """Remove leftovers of killed writes older than ``older_than_s``; returns how many."""
        now = time.time()
        leftovers = [
            p for p in self.folder.glob(f"*/{_TEMP_PREFIX}*") if p.is_dir() and now - p.stat().st_mtime > older_than_s
        ]
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        return len(leftovers)


def _remove(entry: Path) -> None:
    """Delete ``entry``: first renamed to a temporary name (never read), so no reader sees it half-deleted."""
    aside = entry.with_name(f"{_TEMP_PREFIX}removed-{entry.name}-{uuid.uuid4().hex}")
    try:
        os.rename(entry, aside)
    except FileNotFoundError:  # another process removed it first
        return
    except OSError as err:
        raise CacheError(
            f"cannot remove the damaged cache entry {entry} ({err.strerror or err}); delete it by hand, "
            "or choose another cache folder"
        ) from None
    shutil.rmtree(aside, ignore_errors=True)


def _sync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` to disk, so the rename publishes complete data."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb+") as handle:
                os.fsync(handle.fileno())
