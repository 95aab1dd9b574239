"""ndgan: StyleGAN2 for images and volumes from one code base (ops written once for any nd)."""

__version__ = "0.1.0"


def load_generator(path, device="cpu"):
    """The EMA generator of a checkpoint or run folder, ready for inference (see ndgan.sampling)."""
    from .sampling import load_generator as _load

    return _load(path, device)
