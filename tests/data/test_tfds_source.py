"""The tensorflow-datasets source on a dataset this test prepares locally (no TensorFlow)."""

import importlib
import sys

import pytest

from igpo_jax import configlib
from igpo_jax.data.sources import DataError, load_examples

tfds = pytest.importorskip("tensorflow_datasets")

ROWS = {
    "train": [("Ann has 3 apples and buys 4. How many?", "3 + 4 = 7\n#### 7"),
              ("What is 6 times 7?", "6 * 7 = 42\n#### 42"),
              ("Half of 10?", "10 / 2 = 5\n#### 5"),
              ("Broken row", "")],  # empty answer: malformed
    "test": [("2 + 2?", "2 + 2 = 4\n#### 4")],
}

BUILDER = '''
import tensorflow_datasets as tfds

ROWS = {rows!r}


class IgpoMiniGsm(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(
            {{"question": tfds.features.Text(), "answer": tfds.features.Text()}}))

    def _split_generators(self, dl_manager):
        return {{split: self._generate_examples(split) for split in ROWS}}

    def _generate_examples(self, split):
        for i, (q, a) in enumerate(ROWS[split]):
            yield i, {{"question": q, "answer": a}}
'''


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    pkg = root / "igpo_mini_gsm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "builder.py").write_text(BUILDER.format(rows=ROWS))
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("igpo_mini_gsm.builder")
        builder = module.IgpoMiniGsm(data_dir=str(root / "data"), file_format="array_record")
        builder.download_and_prepare()
    finally:
        sys.path.remove(str(root))
    return str(root / "data")


def _cfg(data_dir, **kw):
    c = configlib.base_config()
    c.data.source = "tfds"
    c.data.tfds.update(**{"name": "igpo_mini_gsm", "data_dir": data_dir, "format": "gsm8k",
                          **kw})
    return c


def test_reads_rows_through_data_source(data_dir):
    c = _cfg(data_dir)
    c.data.skip_bad_rows = True
    train = load_examples(c.data.to_dict(), "train")
    # the malformed row is skipped; the rest parse as GSM8K (answer after ####)
    got = sorted((e.question, e.answer) for e in train)
    want = sorted((q, a.split("####")[1].strip()) for q, a in ROWS["train"] if a)
    assert got == want
    seven = next(e for e in train if e.answer == "7")
    assert "3 + 4 = 7" in seven.trace and "\\boxed{7}" in seven.trace
    test = load_examples(c.data.to_dict(), "test")
    assert [(e.question, e.answer) for e in test] == [("2 + 2?", "4")]


def test_malformed_row_names_dataset_split_and_record(data_dir):
    with pytest.raises(DataError, match=r"tfds:igpo_mini_gsm/train\[\d\]: missing or empty "
                                        r"field 'answer'"):
        load_examples(_cfg(data_dir).data.to_dict(), "train")


def test_split_slicing_and_missing_dataset(data_dir):
    c = _cfg(data_dir, test_split="train[:2]")
    c.data.skip_bad_rows = True
    assert 1 <= len(load_examples(c.data.to_dict(), "test")) <= 2
    with pytest.raises(DataError, match="no_such_set"):
        load_examples(_cfg(data_dir, name="no_such_set").data.to_dict(), "train")


def test_config_validation(data_dir):
    c = _cfg(data_dir, format="csv")
    with pytest.raises(configlib.ConfigError, match="data.tfds.format"):
        configlib.validate(c, check_paths=False)
    c = _cfg(data_dir, name="")
    with pytest.raises(configlib.ConfigError, match="data.tfds.name"):
        configlib.validate(c, check_paths=False)
