"""Building blocks the release's nets share: VGG16 body, FCN heads, data layers, loss.

Facts (layer names, multipliers, kernel sizes) follow the release's ``net.py`` files; the
code is ours. Every block writes into a :class:`~caffe_import.netspec.NetSpec` under the names
the release gives, so the emitted prototxt has the release's layer order and names.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from caffe_import.proto import caffe_pb2
from caffe_import.coord_map import crop
from caffe_import.netspec import L, NetSpec, P, Top

#: weights learn at the base rate with decay; biases at twice the rate, no decay
LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]
#: upsampling deconvolutions stay the fixed bilinear interpolation they are initialised to
FROZEN = [dict(lr_mult=0)]

VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def py_dict_repr(pairs: Sequence[tuple[str, object]]) -> str:
    """A Python dict literal with keys in the given order (the release's ``str(dict)``)."""
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in pairs) + "}"


def conv_relu(n: NetSpec, name: str, relu: str, bottom: Top, nout: int, ks: int = 3,
              stride: int = 1, pad: int = 1, learn: bool = True, group: int | None = None) -> Top:
    """Convolution + in-place ReLU, named as the release names them."""
    kw: dict = dict(kernel_size=ks, stride=stride, num_output=nout, pad=pad)
    if group is not None:
        kw["group"] = group
    if learn:
        kw["param"] = LEARN
    n[name] = L.Convolution(bottom, **kw)
    n[relu] = L.ReLU(n[name], in_place=True)
    return n[relu]


def max_pool(n: NetSpec, name: str, bottom: Top, ks: int = 2, stride: int = 2) -> Top:
    n[name] = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=ks, stride=stride)
    return n[name]


def vgg16_fc(n: NetSpec, bottom: Top, sfx: str = "", first_conv: str | None = None,
             deploy: bool = False) -> Top:
    """VGG16 cast fully convolutional: conv1_1 (pad 100) ... pool5, fc6 (7x7), fc7 (1x1).

    ``sfx`` is appended to every name (NYUDv2 color-HHA builds one tower per modality);
    ``first_conv`` renames conv1_1 (NYUDv2 RGB-D's ``conv1_1_bgrd``, 4 input channels).
    Dropout after fc6 / fc7 (ratio 0.5) is left out of deploy nets (identity at test time).
    Returns the top the score layer reads (drop7, i.e. blob fc7).
    """
    x = bottom
    for s, (width, reps) in enumerate(VGG16_STAGES, start=1):
        for r in range(1, reps + 1):
            cname = f"conv{s}_{r}{sfx}"
            if s == 1 and r == 1 and first_conv:
                cname = first_conv
            x = conv_relu(n, cname, f"relu{s}_{r}{sfx}", x, width,
                          pad=100 if (s, r) == (1, 1) else 1)
        x = max_pool(n, f"pool{s}{sfx}", x)
    x = conv_relu(n, f"fc6{sfx}", f"relu6{sfx}", x, 4096, ks=7, pad=0)
    if not deploy:
        n[f"drop6{sfx}"] = x = L.Dropout(x, dropout_ratio=0.5, in_place=True)
    x = conv_relu(n, f"fc7{sfx}", f"relu7{sfx}", x, 4096, ks=1, pad=0)
    if not deploy:
        n[f"drop7{sfx}"] = x = L.Dropout(x, dropout_ratio=0.5, in_place=True)
    return x


def score(n: NetSpec, name: str, bottom: Top, nclass: int) -> Top:
    n[name] = L.Convolution(bottom, num_output=nclass, kernel_size=1, pad=0, param=LEARN)
    return n[name]


def upsample(n: NetSpec, name: str, bottom: Top, nclass: int, ks: int, stride: int) -> Top:
    """Deconvolution without bias, fixed (lr_mult 0): the bilinear upsampling of the release."""
    n[name] = L.Deconvolution(bottom, convolution_param=dict(
        num_output=nclass, kernel_size=ks, stride=stride, bias_term=False), param=FROZEN)
    return n[name]


def fcn_head(n: NetSpec, fc7: Top, data: Top, nclass: int, stride: int, sfx: str = "",
             skip_scale: Mapping[int, float] | None = None) -> Top:
    """Score and upsample: FCN-32s (``stride`` 32), FCN-16s (16) or FCN-8s (8).

    Names as the release: ``score_fr``, then ``upscore`` (32s) or ``upscore2``,
    ``score_pool4``, ``score_pool4c`` (Crop), ``fuse_pool4`` (Eltwise SUM), ``upscore16``
    (16s) or ``upscore_pool4``, ``score_pool3``, ``score_pool3c``, ``fuse_pool3``,
    ``upscore8`` (8s), then the final Crop ``score``; ``sfx`` goes after each base name
    (SIFT Flow: ``score_pool4_semc``). ``skip_scale`` {4: 0.01, 3: 0.0001} inserts the
    at-once net's fixed Scale layers ``scale_pool4`` / ``scale_pool3`` before the skip scores.
    Crop offsets come from the coordinate-map algebra (:func:`caffe_import.coord_map.crop`).
    """
    skip_scale = dict(skip_scale or {})
    x = score(n, f"score_fr{sfx}", fc7, nclass)
    if stride == 32:
        x = upsample(n, f"upscore{sfx}", x, nclass, 64, 32)
    else:
        x = upsample(n, f"upscore2{sfx}", x, nclass, 4, 2)
        for pool, final in ((4, stride == 16), (3, True)):
            src = n[f"pool{pool}"]
            if pool in skip_scale:
                n[f"scale_pool{pool}{sfx}"] = src = L.Scale(
                    src, filler=dict(type="constant", value=skip_scale[pool]), param=FROZEN)
            s = score(n, f"score_pool{pool}{sfx}", src, nclass)
            n[f"score_pool{pool}{sfx}c"] = crop(s, x)
            n[f"fuse_pool{pool}{sfx}"] = L.Eltwise(x, n[f"score_pool{pool}{sfx}c"],
                                                   operation=P.Eltwise.SUM)
            if final:
                big = 16 if pool == 4 else 8
                x = upsample(n, f"upscore{big}{sfx}", n[f"fuse_pool{pool}{sfx}"], nclass,
                             2 * big, big)
                break
            x = upsample(n, f"upscore_pool{pool}{sfx}", n[f"fuse_pool{pool}{sfx}"], nclass, 4, 2)
    n[f"score{sfx}"] = crop(x, data)
    return n[f"score{sfx}"]


def loss(n: NetSpec, name: str, score_top: Top, label: Top, normalize: bool = False) -> None:
    """SoftmaxWithLoss ignoring label 255; the release sums (``normalize: false``) except AlexNet."""
    n[name] = L.SoftmaxWithLoss(score_top, label,
                                loss_param=dict(normalize=normalize, ignore_label=255))


def data_layer(n: NetSpec, kind: str, tops: Sequence[str], labels: Sequence[str],
               module: str, layer: str, param_str: str,
               shapes: Mapping[str, tuple[int, ...]]) -> None:
    """The release's Python data layer (train/val) or an ``Input`` layer (deploy).

    Deploy nets get every non-label top as an ``Input`` blob with the example shape.
    """
    if kind == "deploy":
        inputs = [t for t in tops if t not in labels]
        made = L.Input(ntop=len(inputs), shape=[dict(dim=list(shapes[t])) for t in inputs])
        made = made if isinstance(made, tuple) else (made,)
        for t, top in zip(inputs, made):
            n[t] = top
        return
    made = L.Python(module=module, layer=layer, ntop=len(tops), param_str=param_str)
    made = made if isinstance(made, tuple) else (made,)
    for t, top in zip(tops, made):
        n[t] = top


def finish(n: NetSpec, kind: str) -> caffe_pb2.NetParameter:
    """The NetParameter; the deploy net's Input layer is named ``input`` as in the release."""
    net = n.to_proto()
    if kind == "deploy" and net.layer and net.layer[0].type == "Input":
        net.layer[0].name = "input"
    return net
