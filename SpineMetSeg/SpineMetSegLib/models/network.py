"""Build the segmentation network a model card describes (MONAI networks, 2D slice-wise or 3D).

Usage::

    from SpineMetSegLib.models.modelcard import NetworkSpec
    from SpineMetSegLib.models.network import build_network
    net = build_network(card.network, in_channels=len(card.inputs), out_channels=card.out_channels)
    net = build_network(NetworkSpec(dimensions=2, architecture="UNet", channels=(16, 32, 64, 128),
                                    strides=(2, 2, 2), num_res_units=1), in_channels=3, out_channels=4)

The card's ``network`` block names the architecture and its parameters; ``in_channels`` is the number of
input sequences and ``out_channels`` the number of output labels, background included.
"""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet, UNet

from ..errors import ModelError
from .modelcard import NetworkSpec

ARCHITECTURES = ("UNet", "BasicUNet")


def build_network(spec: NetworkSpec, in_channels: int, out_channels: int) -> torch.nn.Module:
    """Return an untrained network for the card's network ``spec``.

    Raises ``ModelError`` for an unknown architecture or a dimension other than 2 or 3.
    """
    if spec.dimensions not in (2, 3):
        raise ModelError(f"network.dimensions must be 2 or 3, got {spec.dimensions!r}")
    if spec.architecture == "UNet":
        return UNet(
            spatial_dims=spec.dimensions,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=spec.channels,
            strides=spec.strides,
            num_res_units=spec.num_res_units,
            norm=spec.norm,
            dropout=spec.dropout,
        )
    if spec.architecture == "BasicUNet":
        return BasicUNet(
            spatial_dims=spec.dimensions,
            in_channels=in_channels,
            out_channels=out_channels,
            features=spec.features,
            dropout=spec.dropout,
        )
    raise ModelError(f"network.architecture must be one of {', '.join(ARCHITECTURES)}, got {spec.architecture!r}")
