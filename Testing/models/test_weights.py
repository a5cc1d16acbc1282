"""Safe loading of weights: safetensors or torch's weights-only loader; pickles and broken files refused."""

from __future__ import annotations

import pickle

import pytest
import torch

from SpineMetSegLib.errors import ModelError
from SpineMetSegLib.models.modelcard import NetworkSpec
from SpineMetSegLib.models.network import build_network
from SpineMetSegLib.models.weights import apply_state_dict, load_state_dict, save_state_dict

torch.set_num_threads(1)

TINY_NETWORK = {"dimensions": 2, "architecture": "UNet", "channels": [4, 8], "strides": [2], "num_res_units": 0,
                "norm": "instance", "slice_axis": 0}


class WritesMarker:
    """Unpickling this object opens (creates) the marker file: what a malicious model file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def tiny_state(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return build_network(NetworkSpec.from_dict(TINY_NETWORK), 1, 2).state_dict()


def test_saved_weights_load_back_exactly(tmp_path):
    state = tiny_state()
    path = save_state_dict(state, tmp_path / "model.safetensors", metadata={"name": "tiny"})
    loaded = load_state_dict(path)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[name], state[name]) for name in state)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left


def test_a_state_dict_saved_by_torch_loads_with_the_weights_only_loader(tmp_path):
    state = tiny_state()
    torch.save(state, tmp_path / "model.pt")
    loaded = load_state_dict(tmp_path / "model.pt")
    assert all(torch.equal(loaded[name], state[name]) for name in state)


def test_the_marker_pickle_really_runs_code_when_unpickled(tmp_path):
    """The control for the tests below: unpickling this payload creates the marker."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(WritesMarker(marker)))  # noqa: S301 - the point of this control
    assert marker.exists()


@pytest.mark.parametrize("file_name", ["model.pkl", "model.pt", "model.pth", "model.safetensors", "model.bin"])
def test_a_pickle_is_refused_and_never_unpickled(tmp_path, file_name):
    marker = tmp_path / "marker"
    path = tmp_path / file_name
    path.write_bytes(pickle.dumps({"weight": WritesMarker(marker)}))
    with pytest.raises(ModelError, match="Refusing|not a safetensors"):
        load_state_dict(path)
    assert not marker.exists()


def test_a_torch_file_holding_a_code_running_object_is_refused(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"weight": torch.zeros(2), "payload": WritesMarker(marker)}, tmp_path / "model.pt")
    assert not marker.exists()
    with pytest.raises(ModelError, match="holds a Python object .*open.* that could run code"):
        load_state_dict(tmp_path / "model.pt")
    assert not marker.exists()


def test_a_truncated_torch_file_is_refused(tmp_path):
    torch.save(tiny_state(), tmp_path / "model.pt")
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_state_dict(tmp_path / "model.pt")


def test_a_truncated_safetensors_file_is_refused(tmp_path):
    path = save_state_dict(tiny_state(), tmp_path / "model.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt or truncated|truncated"):
        load_state_dict(path)


def test_a_file_of_random_bytes_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ModelError, match="not a safetensors file"):
        load_state_dict(path)


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_state_dict(tmp_path / "absent.safetensors")


def test_tensors_of_another_network_are_refused_with_their_names(tmp_path):
    other = {**TINY_NETWORK, "channels": [4, 16]}
    network = build_network(NetworkSpec.from_dict(other), 1, 2)
    with pytest.raises(ModelError) as error:
        apply_state_dict(network, tiny_state(), source="tiny.safetensors")
    message = str(error.value)
    assert "tiny.safetensors does not fit the network" in message and "wrong shape" in message


def test_missing_tensors_are_named(tmp_path):
    state = tiny_state()
    dropped = next(iter(state))
    del state[dropped]
    with pytest.raises(ModelError, match=f"1 missing tensors: {dropped}"):
        apply_state_dict(build_network(NetworkSpec.from_dict(TINY_NETWORK), 1, 2), state)
