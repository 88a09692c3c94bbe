"""toolkit/io/memory.py: a whole data set in memory, on top of the streaming reader."""

from __future__ import annotations

import numpy as np
import pytest
from io_files import write_mixed_shards

from toolkit.io import SEED_NAME, load_dataset, open_source


@pytest.fixture
def mixed_shards(tmp_path):
    return write_mixed_shards(tmp_path)


def test_single_data_row_loads_as_2d(write_csv):
    features, targets = load_dataset(write_csv("one.csv", "a,b,y\n1,2,3\n")).arrays()
    assert features.shape == (1, 2)
    assert targets.shape == (1, 1)


def test_seed_data_is_the_default():
    dataset = load_dataset()
    assert dataset.source == SEED_NAME
    features, targets = dataset.arrays()
    np.testing.assert_array_equal(features, [[1, 1], [1, 2], [2, 2], [2, 3]])
    np.testing.assert_array_equal(targets[:, 0], [1, 2, 3, 4])
    assert len(dataset.sha256) == 64


def test_chunks_cover_every_row_once_with_mask(write_csv):
    rows = "\n".join(f"{i},{2 * i}" for i in range(1000))
    dataset = load_dataset(write_csv("c.csv", "x,y\n" + rows + "\n"))
    mask = np.random.default_rng(0).random(1000) < 0.3
    picked = np.concatenate([x[:, 0] for x, _ in dataset.chunks(rows=64, select=~mask)])
    np.testing.assert_array_equal(picked, np.arange(1000)[~mask])


def test_the_table_holds_what_the_streaming_reader_yields(mixed_shards):
    folder, x = mixed_shards
    dataset = load_dataset(folder)
    blocks = np.concatenate(list(open_source(folder).blocks(rows=7)))
    np.testing.assert_array_equal(np.hstack(dataset.arrays()), blocks)
    np.testing.assert_array_equal(blocks, x)
    assert dataset.sha256 == open_source(folder).sha256()
