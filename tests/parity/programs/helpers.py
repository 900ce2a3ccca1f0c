"""pyvene's small helpers: seeds, counting, boundary masks, GET_LOC, list depth."""
# ruff: noqa: F821 -- record() and shared() are given by the runner (tests/parity/runner.py)
import pyvene as pv
import torch
from pyvene.models.basic_utils import get_batch_size, get_list_depth

pv.set_seed(3)
record("after_seed", torch.rand(4))
x = torch.linspace(-2, 2, 9)
record("sigmoid_boundary", pv.sigmoid_boundary(x, torch.tensor(-0.5), torch.tensor(0.5), 0.1))
record("harmonic", pv.harmonic_sigmoid_boundary(x, torch.tensor(-0.7), torch.tensor(0.6), 0.5))
rot = torch.eye(4) * 0.9 + 0.05
record("perm_loss", pv.closeness_to_permutation_loss(rot))
record("count", pv.count_parameters(torch.nn.Linear(3, 2)))
record("get_loc", pv.GET_LOC((1, 3), batch_size=2))
record("depth", get_list_depth([[[1], [2]], [[3]]]))
record("batch", get_batch_size({"input_ids": torch.zeros(5, 2)}))
