"""The model registry: complete, consistent entries and a helpful error for unknown names."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlparse

import pytest

from napari_p2sam.models.loading import NORMALIZATIONS
from napari_p2sam.models.registry import MODELS, UnknownModelError, model_info

ISSUE_MODELS = {"vit_b", "vit_l", "vit_h", "vit_t", "medsam_vit_b", "vit_b_lm", "vit_b_em_organelles"}


def test_every_model_the_issue_asks_for_is_there():
    assert set(MODELS) == ISSUE_MODELS


@pytest.mark.parametrize("name", sorted(MODELS))
def test_entry_is_complete(name):
    info = MODELS[name]
    assert info.name == name
    assert re.fullmatch(r"[0-9a-f]{64}", info.sha256), "a full sha256 in lower-case hex"
    url = urlparse(info.url)
    assert url.scheme == "https"
    assert PurePosixPath(url.path).name == info.file_name, "the cached file keeps the upstream name"
    assert info.normalization in NORMALIZATIONS
    assert info.size_mb > 0 and info.title and info.data and info.hardware


def test_names_files_and_checksums_are_unique():
    infos = MODELS.values()
    assert (
        len({i.file_name for i in infos})
        == len({i.sha256 for i in infos})
        == len({i.url for i in infos})
        == len(MODELS)
    )


def test_medsam_uses_minmax_and_the_others_sam():
    assert {n for n, i in MODELS.items() if i.normalization == "minmax"} == {"medsam_vit_b"}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError, match="unknown model 'sam_b'; known models: vit_t, vit_b, vit_l"):
        model_info("sam_b")
    assert isinstance(UnknownModelError("x"), ValueError), "the command line prints it without a traceback"
