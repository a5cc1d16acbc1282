"""Label values: the phantom's tissue classes onto the model's labels (the training target), and the shipped
cards' labels with the values every model output uses."""

from __future__ import annotations

from SpineMetSegLib.labels import (
    LOOK_ALIKE_TISSUES,
    PHANTOM_TO_MODEL,
    POSTERIOR_ELEMENT_TISSUES,
    SPINAL_CANAL_TISSUES,
    VERTEBRAL_BODY_TISSUES,
    Anatomy,
    ModelLabel,
)
from SpineMetSegLib.models import catalog


def test_look_alikes_are_bone_in_the_target_never_metastasis():
    for tissue in LOOK_ALIKE_TISSUES:
        assert tissue in VERTEBRAL_BODY_TISSUES
        assert PHANTOM_TO_MODEL[int(tissue)] == ModelLabel.VERTEBRAL_BODY
    assert ModelLabel.METASTASIS not in PHANTOM_TO_MODEL.values()  # lesions come only from lesions.nii.gz


def test_every_tissue_maps_to_the_body_the_canal_or_background():
    assert {PHANTOM_TO_MODEL[int(t)] for t in VERTEBRAL_BODY_TISSUES} == {ModelLabel.VERTEBRAL_BODY}
    assert {PHANTOM_TO_MODEL[int(t)] for t in SPINAL_CANAL_TISSUES} == {ModelLabel.SPINAL_CANAL}
    background = set(Anatomy) - set(VERTEBRAL_BODY_TISSUES) - set(SPINAL_CANAL_TISSUES)
    assert set(POSTERIOR_ELEMENT_TISSUES) <= background  # pedicles and laminae are not the vertebral body
    assert not any(int(tissue) in PHANTOM_TO_MODEL for tissue in background)
    assert not set(VERTEBRAL_BODY_TISSUES) & set(SPINAL_CANAL_TISSUES)


def test_the_shipped_cards_name_their_labels_with_the_models_values():
    shipped = catalog.load_catalog(catalog.EMBEDDED_CATALOG, include_imported=False)
    for card in shipped.cards:
        assert card.label_value("metastasis") == ModelLabel.METASTASIS == 1, card
        assert card.label_value("vertebral body") == ModelLabel.VERTEBRAL_BODY, card
        assert card.label_value("spinal canal") == ModelLabel.SPINAL_CANAL, card
