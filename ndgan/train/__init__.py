"""Training: ``python -m ndgan.train CONFIG.yaml`` or ``ndgan.train.train(cfg, run_dir)``."""

from .config import Config, ConfigError, load_config
from .loop import train

__all__ = ["Config", "ConfigError", "load_config", "train"]
