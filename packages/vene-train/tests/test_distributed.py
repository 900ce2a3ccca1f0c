"""DAS under torchrun with two processes (DDP over gloo) equals one process on the same global batch.

The test launches this file under ``torchrun --standalone --nproc_per_node 2``; each process
trains on its shard with half the global batch, and the trained rotation must equal the one a
single process learns with the whole batch. Run by hand:
``torchrun --standalone --nproc_per_node 2 packages/vene-train/tests/test_distributed.py OUT``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

import vene as pv
import vene_train.plugin
from vene.plugins import Registry
from vene_train.interventions import RotatedSpaceIntervention
from vene_train.trainers import DASTrainer

GLOBAL_BATCH = 8
EPOCHS = 2
N = 32


def _registry() -> Registry:
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(vene_train.plugin, name="train")
    return Registry(pm)


def _examples() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x, s = torch.randn(N, 4, generator=g), torch.randn(N, 4, generator=g)
    y = torch.randint(0, 3, (N,), generator=g)
    return [{"input_ids": x[i], "source_input_ids": s[i : i + 1], "labels": y[i]} for i in range(N)]


def train(
    batch_size: int, checkpoint_dir: str | None = None
) -> tuple[torch.Tensor, list[float], int, torch.Tensor]:
    """DAS on a seeded MLP; returns the rotation, the losses, the number of steps and the
    rotation before training."""
    torch.manual_seed(0)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2, input_dim=4, num_classes=3))
    im = pv.IntervenableModel(
        {
            "layer": 0,
            "component": "block_output",
            "intervention_type": RotatedSpaceIntervention,
            "subspace_partition": [[0, 2], [2, 8]],
        },
        mlp,
        registry=_registry(),
    )
    initial = next(iter(im.interventions.values())).rotate_layer.weight.detach().clone()
    loader = DataLoader(_examples(), batch_size=batch_size, shuffle=False)

    def sgd(params, lr):
        # SGD: Adam's first steps would magnify float rounding (sum of shards vs whole batch)
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    history = DASTrainer(im, progress=False).train_alignment(
        loader, lr=0.5, epochs=EPOCHS, optimizer=sgd, subspaces=0, checkpoint_dir=checkpoint_dir
    )
    rotation = next(iter(im.interventions.values())).rotate_layer.weight.detach().clone()
    return rotation, history.losses, history.global_step, initial


def _worker(out: str) -> None:
    """One torchrun process: train on half the global batch, write what it learned."""
    import torch.distributed as dist

    rotation, losses, steps, _ = train(GLOBAL_BATCH // 2, checkpoint_dir=os.path.join(out, "ckpt"))
    rank, world = dist.get_rank(), dist.get_world_size()
    save_file(
        {"rotation": rotation, "losses": torch.tensor(losses)},
        os.path.join(out, f"rank{rank}.safetensors"),
        metadata={"steps": str(steps), "world": str(world)},
    )
    dist.destroy_process_group()


def test_two_processes_learn_what_one_process_learns_on_the_same_global_batch(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # containers may not resolve their hostname
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        __file__, str(tmp_path),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    torch.manual_seed(0)
    single, single_losses, single_steps, initial = train(GLOBAL_BATCH)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)]
    assert single_steps == N // GLOBAL_BATCH * EPOCHS
    for r in range(2):
        with safe_open(str(tmp_path / f"rank{r}.safetensors"), framework="pt") as f:
            # two processes, each with its shard: the same number of (global) steps
            assert f.metadata() == {"steps": str(single_steps), "world": "2"}
    for r in ranks:
        torch.testing.assert_close(r["rotation"], single, atol=1e-5, rtol=1e-4)
    # both processes hold the same weights; each reports the loss of its own half-batch
    torch.testing.assert_close(ranks[0]["rotation"], ranks[1]["rotation"], atol=1e-6, rtol=0)
    halves = (ranks[0]["losses"] + ranks[1]["losses"]) / 2
    torch.testing.assert_close(halves, torch.tensor(single_losses), atol=1e-5, rtol=1e-4)
    assert (single - initial).abs().max() > 1e-3  # training did move the rotation
    # only rank 0 wrote the checkpoint, and it loads
    assert (tmp_path / "ckpt" / "final" / "interventions.safetensors").exists()


if __name__ == "__main__":
    _worker(sys.argv[1])
