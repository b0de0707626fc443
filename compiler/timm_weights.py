"""Load timm DeiT/ViT and Swin weights into the supernet of the matching fixed space.

The supernet of a fixed space (``spaces/deit-tiny.space``, ``deit-small``, ``swin-tiny``) holds
exactly the parameters of the timm model, so loading is a one-to-one copy with one reordering:
Swin patch merging's ``4·C`` channels go from timm's group-major to the supernet's channel-major
order.  LayerNorm epsilons
are taken from the timm model too (ViT uses 1e-6, Swin 1e-5): they are part of its function.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .ops.elastic import ElasticLayerNorm, ElasticLinear, ElasticQKV


def _copy(dst: torch.Tensor, src: torch.Tensor, what: str) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"{what}: the supernet holds {tuple(dst.shape)} but the timm model {tuple(src.shape)}; "
                         "compile the space that describes this timm model")
    with torch.no_grad():
        dst.copy_(src)


def _norm(dst: ElasticLayerNorm, src: nn.Module, what: str) -> None:
    if not isinstance(src, nn.LayerNorm):
        raise ValueError(f"{what}: expected nn.LayerNorm in the timm model, found {type(src).__name__}")
    _copy(dst.weight, src.weight, what + ".weight")
    _copy(dst.bias, src.bias, what + ".bias")
    dst.eps = src.eps


def _linear(dst: ElasticLinear | ElasticQKV, src: nn.Linear, what: str) -> None:
    _copy(dst.weight, src.weight, what + ".weight")
    if (dst.bias is None) != (src.bias is None):
        raise ValueError(f"{what}: bias present in only one of the supernet and the timm model")
    if src.bias is not None:
        _copy(dst.bias, src.bias, what + ".bias")


def _identity(mod: nn.Module | None, what: str) -> None:
    if mod is not None and not isinstance(mod, nn.Identity):
        raise ValueError(f"the timm model uses {what} ({type(mod).__name__}), which the space language has no field for")


def _block(op, blk, what: str) -> None:
    """One timm ``Block``/``SwinTransformerBlock`` into a transformer op."""
    for name in ("ls1", "ls2"):
        _identity(getattr(blk, name, None), f"layer scale ({what}.{name})")
    for name in ("q_norm", "k_norm", "norm"):
        _identity(getattr(blk.attn, name, None), f"attention normalisation ({what}.attn.{name})")
    _norm(op.norm1, blk.norm1, what + ".norm1")
    _linear(op.attn.qkv, blk.attn.qkv, what + ".attn.qkv")  # both in timm's (3, heads, head_dim) layout
    _linear(op.attn.proj, blk.attn.proj, what + ".attn.proj")
    table = getattr(blk.attn, "relative_position_bias_table", None)
    if (table is None) != (not op.attn.window):
        raise ValueError(f"{what}: window attention in only one of the supernet and the timm model")
    if table is not None:
        _copy(op.attn.relative_position_bias_table, table, what + ".attn.relative_position_bias_table")
    _identity(getattr(blk.mlp, "norm", None), f"an MLP norm ({what}.mlp.norm)")
    if not isinstance(blk.mlp.act, nn.GELU) or blk.mlp.act.approximate != "none":
        raise ValueError(f"{what}.mlp.act: only exact GELU is compiled, found {blk.mlp.act}")
    _norm(op.norm2, blk.norm2, what + ".norm2")
    _linear(op.mlp.fc1, blk.mlp.fc1, what + ".mlp.fc1")
    _linear(op.mlp.fc2, blk.mlp.fc2, what + ".mlp.fc2")


def _slots(net):
    return [blk for stage in net.stages for blk in stage.blocks]


def _load_vit(net, m) -> None:
    from .ops.heads import LinearHeadOp
    from .ops.patch_embed import PatchEmbedOp

    if getattr(m, "num_prefix_tokens", 1) != 1 or not getattr(m, "has_class_token", True) \
            or getattr(m, "no_embed_class", False) or m.global_pool != "token":
        raise ValueError("only ViT/DeiT with one class token, its position embedded and token pooling can be loaded "
                         "(distilled DeiT, register tokens and average pooling have no matching space)")
    for name in ("norm_pre", "fc_norm"):
        _identity(getattr(m, name, None), name)
    _identity(getattr(m.patch_embed, "norm", None), "a patch-embedding norm")
    if not isinstance(net.stem, PatchEmbedOp) or not isinstance(net.head, LinearHeadOp) or net.head.norm is None:
        raise ValueError("the supernet is not a ViT: it needs a patch_embed stem and a `linear` head with its norm")
    if any(stage.transition is not None for stage in net.stages):
        raise ValueError("the supernet has stage transitions; a ViT has none")
    slots = _slots(net)
    if len(slots) != len(m.blocks):
        raise ValueError(f"the supernet has {len(slots)} block slots, the timm model {len(m.blocks)} blocks")
    _copy(net.stem.proj.weight, m.patch_embed.proj.weight, "patch_embed.proj.weight")
    _copy(net.stem.proj.bias, m.patch_embed.proj.bias, "patch_embed.proj.bias")
    _copy(net.stem.cls_token, m.cls_token, "cls_token")
    _copy(net.stem.pos_embed, m.pos_embed, "pos_embed")
    for i, (op, blk) in enumerate(zip(slots, m.blocks)):
        _block(op, blk, f"blocks.{i}")
    _norm(net.head.norm, m.norm, "norm")
    _linear(net.head.fc, m.head, "head")


def _load_swin(net, m) -> None:
    from .ops.patch_merging import PatchMergingOp

    if net.stem.norm is None:
        raise ValueError("the supernet's patch_embed has no norm; Swin's has one")
    _copy(net.stem.proj.weight, m.patch_embed.proj.weight, "patch_embed.proj.weight")
    _copy(net.stem.proj.bias, m.patch_embed.proj.bias, "patch_embed.proj.bias")
    _norm(net.stem.norm, m.patch_embed.norm, "patch_embed.norm")
    if net.stem.pos_embed is not None or net.stem.cls_token is not None:
        raise ValueError("the supernet's stem has a position embedding or class token; Swin has neither")
    if len(net.stages) != len(m.layers):
        raise ValueError(f"the supernet has {len(net.stages)} stages, the timm model {len(m.layers)}")
    for s, (stage, layer) in enumerate(zip(net.stages, m.layers)):
        what = f"layers.{s}"
        down = layer.downsample
        if isinstance(down, nn.Identity):
            if stage.transition is not None:
                raise ValueError(f"{what}: the supernet has a transition, the timm stage none")
        else:
            if not isinstance(stage.transition, PatchMergingOp):
                raise ValueError(f"{what}: the timm stage starts with patch merging, the supernet stage does not")
            c = down.norm.normalized_shape[0] // 4
            # timm concatenates group-major (g·C + c); the supernet stores channel-major (c·4 + g)
            _copy(stage.transition.norm.weight, down.norm.weight.view(4, c).t().reshape(-1), what + ".downsample.norm.weight")
            _copy(stage.transition.norm.bias, down.norm.bias.view(4, c).t().reshape(-1), what + ".downsample.norm.bias")
            stage.transition.norm.eps = down.norm.eps
            w = down.reduction.weight
            _copy(stage.transition.reduction.weight, w.view(w.shape[0], 4, c).transpose(1, 2).reshape(w.shape[0], -1),
                  what + ".downsample.reduction.weight")
        if len(stage.blocks) != len(layer.blocks):
            raise ValueError(f"{what}: the supernet has {len(stage.blocks)} block slots, the timm stage {len(layer.blocks)}")
        for i, (op, blk) in enumerate(zip(stage.blocks, layer.blocks)):
            if op.attn.window != blk.window_size[0]:
                raise ValueError(f"{what}.blocks.{i}: window {op.attn.window} in the supernet, {blk.window_size[0]} in timm")
            _block(op, blk, f"{what}.blocks.{i}")
    _norm(net.head.norm, m.norm, "norm")
    _linear(net.head.fc, m.head.fc, "head.fc")


def load_timm_weights(net, timm_model: nn.Module):
    """Copy a timm ``VisionTransformer`` (DeiT/ViT) or ``SwinTransformer`` into ``net``; returns ``net``.

    ``net`` must be the supernet of the space that describes the model (e.g. ``spaces/deit-tiny.space``
    for ``deit_tiny_patch16_224``); any mismatch raises ``ValueError`` naming the tensor.
    """
    from timm.models.swin_transformer import SwinTransformer
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(timm_model, VisionTransformer):
        _load_vit(net, timm_model)
    elif isinstance(timm_model, SwinTransformer):
        _load_swin(net, timm_model)
    else:
        raise TypeError(f"load_timm_weights loads timm VisionTransformer or SwinTransformer, not {type(timm_model).__name__}")
    return net
