"""Build the segmentation network a model card describes (MONAI networks, 2D slice-wise or 3D).

Usage::

    from SpineMetSegLib.network import build_network
    net = build_network({"dimensions": 2, "architecture": "UNet", "channels": [16, 32, 64, 128],
                         "strides": [2, 2, 2], "num_res_units": 1}, in_channels=3, out_channels=4)

The card's ``network`` block names the architecture and its parameters; ``in_channels`` is the number of
input sequences and ``out_channels`` the number of output labels, background included.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from monai.networks.nets import BasicUNet, UNet

from .errors import ModelError

ARCHITECTURES = ("UNet", "BasicUNet")


def build_network(spec: Mapping[str, Any], in_channels: int, out_channels: int) -> torch.nn.Module:
    """Return an untrained network for the card's ``network`` block ``spec``.

    Raises ``ModelError`` for an unknown architecture, a dimension other than 2 or 3, or missing parameters.
    """
    dimensions = spec.get("dimensions")
    if dimensions not in (2, 3):
        raise ModelError(f"network.dimensions must be 2 or 3, got {dimensions!r}")
    architecture = spec.get("architecture")
    try:
        if architecture == "UNet":
            return UNet(
                spatial_dims=dimensions,
                in_channels=in_channels,
                out_channels=out_channels,
                channels=tuple(spec["channels"]),
                strides=tuple(spec["strides"]),
                num_res_units=int(spec.get("num_res_units", 0)),
                norm=spec.get("norm", "instance"),
                dropout=float(spec.get("dropout", 0.0)),
            )
        if architecture == "BasicUNet":
            return BasicUNet(
                spatial_dims=dimensions,
                in_channels=in_channels,
                out_channels=out_channels,
                features=tuple(spec["features"]),
                dropout=float(spec.get("dropout", 0.0)),
            )
    except KeyError as missing:
        raise ModelError(f"network block of the model card lacks {missing} for {architecture}") from None
    raise ModelError(f"network.architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")


def downsampling_factor(spec: Mapping[str, Any]) -> int:
    """The total stride of the encoder: patch sizes must be multiples of it."""
    if spec.get("architecture") == "BasicUNet":
        return 16
    factor = 1
    for stride in spec.get("strides", ()):
        factor *= int(stride)
    return factor
