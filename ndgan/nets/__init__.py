"""StyleGAN2 networks for any number of spatial dimensions, built from ndgan.ops and ndgan.layers only."""

from .common import build_networks
from .discriminator import Discriminator
from .generator import Generator, SynthesisNetwork
from .mapping import MappingNetwork
from .shapes import default_base_shape

__all__ = ["Discriminator", "build_networks", "Generator", "MappingNetwork", "SynthesisNetwork", "default_base_shape"]
