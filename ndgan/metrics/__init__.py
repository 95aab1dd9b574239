"""Metrics for generated images and volumes, all offline: feature-network distances (FID, KID, precision and
recall, path length), N-d sample statistics (MMD, MS-SSIM, intensity histograms) and the adsorption physics of
energy grids. ``python -m ndgan.metrics RUN_OR_CKPT --metrics fid,kid``; during training ``train.metrics``."""

from .settings import METRICS, MetricSettings, check_names

__all__ = ["METRICS", "MetricSettings", "check_names", "Evaluator"]


def __getattr__(name):  # the evaluator pulls in torch and the feature networks: import on first use
    if name == "Evaluator":
        from .evaluate import Evaluator

        return Evaluator
    raise AttributeError(name)
