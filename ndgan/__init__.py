"""ndgan: StyleGAN2 for images and volumes from one code base (ops written once for any nd)."""

__version__ = "0.1.0"
