"""Scaling, stated and never silent: features as the source documents (built-in
datasets) or as asked (`standardize`), regression targets standardized
unless `none`. Statistics come from the training split only."""

import numpy as np


def _standardized(splits):
    """The splits standardized with the first one's per-column mean and std."""
    mean = splits[0].mean(axis=0)
    std = splits[0].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    scaled = tuple(((a - mean) / std).astype("float32") for a in splits)
    return scaled, mean, std


def scaled(splits, feature_scaling, built_in):
    """`(splits, description)`: features after the scaling asked for
    (`built_in`: the source's own, from `builtin.SCALING`, or None)."""
    splits = tuple(a.astype("float32") for a in splits)
    if feature_scaling == "standardize":
        scaled, _, _ = _standardized(splits)
        return scaled, "standardized per feature with the training split's mean and std"
    if feature_scaling == "auto" and built_in:
        description, divisor = built_in
        factor = divisor(splits[0])
        return tuple((a / factor).astype("float32") for a in splits), description
    return splits, "as given (no scaling)"


def scaled_targets(splits, target_scaling):
    """`(splits, note)`: regression targets, standardized unless `none`."""
    if target_scaling == "none":
        return splits, "; targets as given"
    scaled, mean, std = _standardized(splits)
    shown = ", ".join(f"{m:.4g} +- {s:.4g}" for m, s in zip(mean, std, strict=True))
    return scaled, (
        f"; targets standardized with the training split's mean +- std ({shown}), "
        "so losses are in those units"
    )
