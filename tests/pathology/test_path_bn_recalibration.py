"""BatchNorm recalibration after short training from random weights."""

import torch

from gistrisk.pathology.classes import IMAGENET_MEAN, IMAGENET_STD
from gistrisk.pathology.data import to_input
from gistrisk.pathology.train import recalibrate_batchnorm


def test_running_stats_become_the_data_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.1))
    bn = model[1]
    bn.running_mean.fill_(5.0)  # stale statistics, as after a few steps from random init
    weight_before = model[0].weight.clone()
    xb = torch.randint(0, 256, (6, 16, 16, 3), dtype=torch.uint8)
    loader = [(xb, torch.zeros(6, dtype=torch.long))]
    recalibrate_batchnorm(model, loader, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"))
    with torch.no_grad():
        act = model[0](to_input(xb, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu")))
    torch.testing.assert_close(bn.running_mean, act.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, act.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.1  # restored
    assert torch.equal(model[0].weight, weight_before)  # weights untouched
