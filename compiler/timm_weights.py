"""Load timm VisionTransformer (ViT/DeiT/DeiT III) and SwinTransformer weights into the supernet
of the fixed space that describes the model.

The supernet of such a space holds exactly the parameters of the timm model, so loading is a
one-to-one copy with one reordering: Swin patch merging's ``4·C`` channels go from timm's
group-major to the supernet's channel-major order.  LayerNorm epsilons are taken from the timm
model too (ViT uses 1e-6, Swin 1e-5): they are part of its function.

What a space can say of a timm ViT: any depth, width, heads, MLP width, patch size and
resolution; a class token or none, token or average pooling (the class token kept or not:
``head linear { pool avg  class_token true }``), the final norm before pooling (``norm``) or after
it (``fc_norm``), qkv bias or none, layer scale (``layer_scale``), the position embedding over
every token (``pos abs``), over the patch tokens only (``pos patches``, timm's
``no_embed_class``) or none.  Anything else — distillation or register tokens, a norm before the
blocks, attention pooling, q/k norms, other blocks — is refused with a
:class:`~spacelang.errors.CompileError` naming the feature the language lacks.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from spacelang.errors import CompileError

from .ops.elastic import ElasticLayerNorm, ElasticLinear, ElasticQKV


def _copy(dst: torch.Tensor, src: torch.Tensor, what: str) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise CompileError(f"{what}: the supernet holds {tuple(dst.shape)} but the timm model {tuple(src.shape)}",
                           hint="compile the space that describes this timm model")
    with torch.no_grad():
        dst.copy_(src)


def _present(ours, theirs: nn.Module | None, what: str, field: str) -> bool:
    """Whether a module is in both (True) or neither (False); a CompileError if in only one."""
    has_theirs = theirs is not None and not isinstance(theirs, nn.Identity)
    if (ours is not None) != has_theirs:
        where = "the timm model" if has_theirs else "the supernet"
        raise CompileError(f"{what}: only {where} has it", hint=f"match the space's `{field}` to the timm model")
    return has_theirs


def _norm(dst: ElasticLayerNorm, src: nn.Module, what: str) -> None:
    if not isinstance(src, nn.LayerNorm):
        raise CompileError(f"{what}: expected nn.LayerNorm in the timm model, found {type(src).__name__}")
    _copy(dst.weight, src.weight, what + ".weight")
    _copy(dst.bias, src.bias, what + ".bias")
    dst.eps = src.eps


def _linear(dst: ElasticLinear | ElasticQKV, src: nn.Linear, what: str) -> None:
    _copy(dst.weight, src.weight, what + ".weight")
    if (dst.bias is None) != (src.bias is None):
        raise CompileError(f"{what}: bias present in only one of the supernet and the timm model",
                           hint="`qkv_bias false` describes a qkv projection without bias")
    if src.bias is not None:
        _copy(dst.bias, src.bias, what + ".bias")


def _missing(mod: nn.Module | None, feature: str) -> None:
    """Refuse a timm module the language has no field for, naming the feature."""
    if mod is not None and not isinstance(mod, nn.Identity):
        raise CompileError(f"the timm model uses {feature} ({type(mod).__name__}), which the space language cannot express")


def _block(op, blk, what: str) -> None:
    """One timm ``Block``/``SwinTransformerBlock`` into a transformer op."""
    for name in ("q_norm", "k_norm", "norm"):
        _missing(getattr(blk.attn, name, None), f"attention normalisation ({what}.attn.{name})")
    _missing(getattr(blk.mlp, "norm", None), f"an MLP norm ({what}.mlp.norm)")
    if not isinstance(getattr(blk.mlp, "act", None), nn.GELU) or blk.mlp.act.approximate != "none":
        raise CompileError(f"{what}.mlp: only an MLP with exact GELU is compiled, found {type(blk.mlp).__name__}")
    _norm(op.norm1, blk.norm1, what + ".norm1")
    _linear(op.attn.qkv, blk.attn.qkv, what + ".attn.qkv")  # both in timm's (3, heads, head_dim) layout
    _linear(op.attn.proj, blk.attn.proj, what + ".attn.proj")
    table = getattr(blk.attn, "relative_position_bias_table", None)
    if (table is None) != (not op.attn.window):
        raise CompileError(f"{what}: window attention in only one of the supernet and the timm model")
    if table is not None:
        _copy(op.attn.relative_position_bias_table, table, what + ".attn.relative_position_bias_table")
    for ours, name in ((op.ls1, "ls1"), (op.ls2, "ls2")):
        if _present(ours, getattr(blk, name, None), f"layer scale ({what}.{name})", "layer_scale"):
            _copy(ours.gamma, getattr(blk, name).gamma, f"{what}.{name}.gamma")
    _norm(op.norm2, blk.norm2, what + ".norm2")
    _linear(op.mlp.fc1, blk.mlp.fc1, what + ".mlp.fc1")
    _linear(op.mlp.fc2, blk.mlp.fc2, what + ".mlp.fc2")


def _slots(net):
    return [blk for stage in net.stages for blk in stage.blocks]


def _refuse_vit_features(m) -> None:
    """The ViT features no space can say, each named."""
    from timm.models.vision_transformer import Block

    if getattr(m, "dist_token", None) is not None:
        raise CompileError("the timm model has a distillation token (distilled DeiT: a second prefix token and a "
                           "second head), which the space language cannot express")
    if getattr(m, "num_reg_tokens", 0):
        raise CompileError(f"the timm model has {m.num_reg_tokens} register token(s), which the space language "
                           "cannot express")
    _missing(getattr(m, "norm_pre", None), "a norm before the blocks (norm_pre)")
    _missing(getattr(m, "attn_pool", None), "attention pooling")
    if m.global_pool not in ("token", "avg"):
        raise CompileError(f"the timm model pools with {m.global_pool!r}, which the space language cannot express "
                           "(it has class-token and average pooling)")
    if m.global_pool == "avg" and m.has_class_token and getattr(m, "pool_include_prefix", False):
        raise CompileError("the timm model averages the class token with the patch tokens, which the space language "
                           "cannot express (`pool avg` averages the patch tokens)")
    if m.patch_embed.proj.bias is None:
        raise CompileError("the timm model's patch embedding has no bias, which the space language cannot express")
    for i, blk in enumerate(m.blocks):
        if type(blk) is not Block:
            raise CompileError(f"blocks.{i} is a {type(blk).__name__}; the space language expresses timm's "
                               "pre-norm Block only")


def _load_vit(net, m) -> None:
    from .ops.heads import LinearHeadOp
    from .ops.patch_embed import PatchEmbedOp

    _refuse_vit_features(m)
    if not isinstance(net.stem, PatchEmbedOp) or not isinstance(net.head, LinearHeadOp):
        raise CompileError("the supernet is not a ViT: it needs a patch_embed stem and a `linear` head")
    if any(stage.transition is not None for stage in net.stages):
        raise CompileError("the supernet has stage transitions; a ViT has none")
    stem, head = net.spec.stem.fields, net.spec.head.fields
    pool = "cls" if m.global_pool == "token" else "avg"
    if head.pool != pool or head.cls != m.has_class_token:
        raise CompileError(
            f"the timm model pools {'the class token' if pool == 'cls' else 'the average of the patch tokens'} "
            f"{'with' if m.has_class_token else 'without'} a class token; the space's head says "
            f"`pool {head.pool}` {'with' if head.cls else 'without'} one",
            hint=f"write `head linear {{ pool {pool}{'  class_token true' if pool == 'avg' and m.has_class_token else ''} }}`")
    pos = "none" if m.pos_embed is None else ("patches" if m.no_embed_class else "abs")
    if stem.pos != pos:
        raise CompileError(f"the timm model's position embedding is `pos {pos}`, the space's stem says `pos {stem.pos}`",
                           hint="`pos patches` embeds the patch tokens only (timm's no_embed_class)")
    slots = _slots(net)
    if len(slots) != len(m.blocks):
        raise CompileError(f"the supernet has {len(slots)} block slots, the timm model {len(m.blocks)} blocks")
    _copy(net.stem.proj.weight, m.patch_embed.proj.weight, "patch_embed.proj.weight")
    _copy(net.stem.proj.bias, m.patch_embed.proj.bias, "patch_embed.proj.bias")
    if _present(net.stem.norm, getattr(m.patch_embed, "norm", None), "a patch-embedding norm", "norm"):
        _norm(net.stem.norm, m.patch_embed.norm, "patch_embed.norm")
    if m.has_class_token:
        _copy(net.stem.cls_token, m.cls_token, "cls_token")
    if m.pos_embed is not None:
        _copy(net.stem.pos_embed, m.pos_embed, "pos_embed")
    for i, (op, blk) in enumerate(zip(slots, m.blocks)):
        _block(op, blk, f"blocks.{i}")
    if _present(net.head.norm, m.norm, "the final norm before pooling (norm)", "norm"):
        _norm(net.head.norm, m.norm, "norm")
    if _present(net.head.fc_norm, m.fc_norm, "the norm after pooling (fc_norm)", "fc_norm"):
        _norm(net.head.fc_norm, m.fc_norm, "fc_norm")
    _linear(net.head.fc, m.head, "head")


def _load_swin(net, m) -> None:
    from .ops.patch_merging import PatchMergingOp

    if net.stem.norm is None:
        raise CompileError("the supernet's patch_embed has no norm; Swin's has one")
    _copy(net.stem.proj.weight, m.patch_embed.proj.weight, "patch_embed.proj.weight")
    _copy(net.stem.proj.bias, m.patch_embed.proj.bias, "patch_embed.proj.bias")
    _norm(net.stem.norm, m.patch_embed.norm, "patch_embed.norm")
    if net.stem.pos_embed is not None or net.stem.cls_token is not None:
        raise CompileError("the supernet's stem has a position embedding or class token; Swin has neither")
    if len(net.stages) != len(m.layers):
        raise CompileError(f"the supernet has {len(net.stages)} stages, the timm model {len(m.layers)}")
    for s, (stage, layer) in enumerate(zip(net.stages, m.layers)):
        what = f"layers.{s}"
        down = layer.downsample
        if isinstance(down, nn.Identity):
            if stage.transition is not None:
                raise CompileError(f"{what}: the supernet has a transition, the timm stage none")
        else:
            if not isinstance(stage.transition, PatchMergingOp):
                raise CompileError(f"{what}: the timm stage starts with patch merging, the supernet stage does not")
            c = down.norm.normalized_shape[0] // 4
            # timm concatenates group-major (g·C + c); the supernet stores channel-major (c·4 + g)
            _copy(stage.transition.norm.weight, down.norm.weight.view(4, c).t().reshape(-1), what + ".downsample.norm.weight")
            _copy(stage.transition.norm.bias, down.norm.bias.view(4, c).t().reshape(-1), what + ".downsample.norm.bias")
            stage.transition.norm.eps = down.norm.eps
            w = down.reduction.weight
            _copy(stage.transition.reduction.weight, w.view(w.shape[0], 4, c).transpose(1, 2).reshape(w.shape[0], -1),
                  what + ".downsample.reduction.weight")
        if len(stage.blocks) != len(layer.blocks):
            raise CompileError(f"{what}: the supernet has {len(stage.blocks)} block slots, the timm stage {len(layer.blocks)}")
        for i, (op, blk) in enumerate(zip(stage.blocks, layer.blocks)):
            if op.attn.window != blk.window_size[0]:
                raise CompileError(f"{what}.blocks.{i}: window {op.attn.window} in the supernet, {blk.window_size[0]} in timm")
            _block(op, blk, f"{what}.blocks.{i}")
    head = net.spec.head.fields
    if head.pool != "avg" or head.fc_norm or head.pre_logits:
        raise CompileError("Swin averages the tokens after its final norm: the space's head must be "
                           "`head linear { pool avg }`")
    _norm(net.head.norm, m.norm, "norm")
    _linear(net.head.fc, m.head.fc, "head.fc")


def load_timm_weights(net, timm_model: nn.Module):
    """Copy a timm ``VisionTransformer`` (ViT/DeiT/DeiT III) or ``SwinTransformer`` into ``net``;
    returns ``net``.

    ``net`` must be the supernet of the space that describes the model (e.g. ``spaces/deit-tiny.space``
    for ``deit_tiny_patch16_224``); any mismatch, and any feature of the timm model the language
    cannot express, raises :class:`~spacelang.errors.CompileError` naming it.
    """
    from timm.models.swin_transformer import SwinTransformer
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(timm_model, VisionTransformer):
        _load_vit(net, timm_model)
    elif isinstance(timm_model, SwinTransformer):
        _load_swin(net, timm_model)
    else:
        raise CompileError(f"load_timm_weights loads timm VisionTransformer or SwinTransformer, "
                           f"not {type(timm_model).__name__}")
    return net
