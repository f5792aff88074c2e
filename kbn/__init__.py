"""kbn: a faster, more robust drop-in BatchNormalization for Keras 3.

Public API:
    kbn.BatchNormalization    the layer (drop-in for keras.layers.BatchNormalization)
    kbn.noise                 noise models for regularization as noise
    kbn.mc_predict            Monte-Carlo batch-normalization predictions
    kbn.convert               swap a model's BN layers between Keras and kbn
    kbn.recompute_statistics  exact moving statistics over data (precise BN)
    kbn.fold                  an inference copy with BN folded into Dense/Conv
    kbn.callbacks             TensorBoard instruments: ActivationPercentiles,
                              LandscapeProbe
"""

from kbn import callbacks, noise
from kbn._version import __version__
from kbn.batch_normalization import BatchNormalization
from kbn.conversion import convert
from kbn.folding import fold
from kbn.monte_carlo import mc_predict
from kbn.precise_statistics import recompute_statistics

__all__ = [
    "BatchNormalization",
    "callbacks",
    "convert",
    "fold",
    "mc_predict",
    "noise",
    "recompute_statistics",
    "__version__",
]
