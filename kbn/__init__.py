"""kbn: a faster, more robust drop-in BatchNormalization for Keras 3.

Public API:
    kbn.BatchNormalization   the layer (drop-in for keras.layers.BatchNormalization)
    kbn.noise                noise models for regularization as noise
    kbn.mc_predict           Monte-Carlo batch-normalization predictions
    kbn.callbacks            TensorBoard instruments: ActivationPercentiles,
                             LandscapeProbe
"""

from kbn import callbacks, noise
from kbn.batch_normalization import BatchNormalization
from kbn.monte_carlo import mc_predict

__version__ = "0.1.0"
__all__ = ["BatchNormalization", "callbacks", "mc_predict", "noise", "__version__"]
