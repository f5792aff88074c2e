"""TensorBoard instruments that show why batch normalization helps.

- `ActivationPercentiles`: the 15/50/85th percentiles of the inputs of the
  nonlinearities over training (Ioffe & Szegedy 2015, Figure 1).
- `LandscapeProbe`: the loss range and gradient predictiveness along the
  gradient (Santurkar et al. 2018, Figure 4).

Both fire every `every_n_steps` optimizer steps, write TensorBoard scalars
under `log_dir/train`, keep their numbers in `callback.history`, and are
safe to deep-copy (Keras Tuner copies callbacks for every execution).
"""

from kbn.callbacks.activation_percentiles import ActivationPercentiles
from kbn.callbacks.landscape_probe import LandscapeProbe
from kbn.callbacks.step_callback import StepCallback

__all__ = ["ActivationPercentiles", "LandscapeProbe", "StepCallback"]
