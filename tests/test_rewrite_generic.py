"""The generic deploy rewrites: BatchNorm folding, dropout removal, and the walker's contract."""
from __future__ import annotations

import torch
from torch import nn

import edgevit
from edgevit.models.layers import DropPath
from edgevit.rewrite.fuse import bn_to_affine, fuse_bn_conv, fuse_conv_bn, fuse_linear_bn


def _randomise_bn(bn: nn.modules.batchnorm._BatchNorm) -> nn.modules.batchnorm._BatchNorm:
    with torch.no_grad():
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_(1, 0.2)
        bn.bias.normal_(0, 0.2)
    return bn.eval()


def test_conv_bn_fold_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False)
    bn = _randomise_bn(nn.BatchNorm2d(16))
    x = torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(fuse_conv_bn(conv, bn)(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_bn_conv_fold_exact_for_unpadded_and_grouped():
    torch.manual_seed(0)
    bn = _randomise_bn(nn.BatchNorm2d(8))
    for conv in (nn.Conv2d(8, 12, 1), nn.Conv2d(8, 8, 2, stride=2, groups=4)):
        x = torch.randn(2, 8, 6, 6)
        torch.testing.assert_close(fuse_bn_conv(bn, conv)(x), conv(bn(x)), atol=1e-5, rtol=1e-5)


def test_linear_bn_and_affine():
    torch.manual_seed(0)
    lin, bn1 = nn.Linear(5, 7), _randomise_bn(nn.BatchNorm1d(7))
    x = torch.randn(4, 5)
    torch.testing.assert_close(fuse_linear_bn(lin, bn1)(x), bn1(lin(x)), atol=1e-5, rtol=1e-5)
    bn2 = _randomise_bn(nn.BatchNorm2d(3))
    y = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(bn_to_affine(bn2)(y), bn2(y), atol=1e-5, rtol=1e-5)


def test_deploy_folds_sequential_removes_dropout_and_keeps_input():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), _randomise_bn(nn.BatchNorm2d(8)), nn.ReLU(), nn.Dropout(0.5), DropPath(0.2),
        nn.Flatten(), nn.LazyLinear(4),
    )
    x = torch.randn(2, 3, 8, 8)
    model(x)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deployed = edgevit.deploy(model)
    kinds = [type(m) for m in deployed.modules()]
    assert nn.BatchNorm2d not in kinds and nn.Dropout not in kinds and DropPath not in kinds
    torch.testing.assert_close(deployed(x), model(x), atol=1e-5, rtol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model[1], nn.BatchNorm2d)
    assert not any(p.requires_grad for p in deployed.parameters())
