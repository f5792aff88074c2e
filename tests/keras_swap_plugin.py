"""A pytest plugin that runs Keras's own tests with kbn's layer swapped in.

Loaded with `-p keras_swap_plugin` by test_keras_suite.py; it writes the
number of kbn layers the suite built to $KBN_SWAP_COUNT, so the test can tell
the swap really happened. The backend is the caller's `KERAS_BACKEND`
(TensorFlow when unset).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras.src.layers as keras_layers  # noqa: E402
import keras.src.layers.normalization.batch_normalization as keras_bn  # noqa: E402

import kbn  # noqa: E402

_built = []


_init = kbn.BatchNormalization.__init__


def _counted_init(self, *args, **kwargs):
    _built.append(1)
    _init(self, *args, **kwargs)


kbn.BatchNormalization.__init__ = _counted_init
keras_layers.BatchNormalization = kbn.BatchNormalization
keras_bn.BatchNormalization = kbn.BatchNormalization


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["KBN_SWAP_COUNT"], "w") as f:
        f.write(str(len(_built)))
