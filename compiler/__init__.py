"""The PyTorch backend of spacelang (installed as ``spacelang.compiler``).

``build_supernet(space)`` compiles a space into a weight-entangled supernet; ``net(x, arch)`` runs
any arch of the space and ``net.extract(arch)`` returns it as a standalone module.
``load_timm_weights(net, timm_model)`` loads a timm DeiT/Swin model into the supernet of the
matching fixed space.
"""
from .supernet import Subnet, Supernet, build_supernet
from .timm_weights import load_timm_weights

__all__ = ["build_supernet", "Supernet", "Subnet", "load_timm_weights"]
