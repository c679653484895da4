#!/usr/bin/python3
"""
Independent PyTorch reference for the ResBM Llama-style model (DESIGN.md section 1).

Written from the specification only; it shares no code with the C++ implementation.
It loads an export directory (config.json + model.safetensors), recomputes logits,
the mean next-token loss and the gradient of every tensor on the batch stored in a
probe file written by the C++ code, and compares them.

    /usr/bin/python3 tests/reference/resbm_reference.py \
        --model EXPORT_DIR --probe PROBE.safetensors [--dtype float64|float32]

Exit status: 0 all checks pass, 1 a check failed, 2 a malformed input file.

Dimension letters used in the shape comments:
    B  batch size                  T  sequence length (tokens)
    V  vocabulary size             d  model width (hidden_size)
    F  MLP hidden width            H  attention heads
    hd head width (d / H)          k  boundary width (d / ratio)
    N  number of rows (B*T)        m  boundary-half hidden width (halves_hidden),
                                      or the factorized token channel's rank
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

# ----------------------------------------------------------------------------
# safetensors, read by hand


class FormatError(Exception):
    """A file that does not follow the export format."""


_NP_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}


def load_safetensors(path):
    """Return ({name: torch.Tensor}, metadata dict). Raises FormatError on a bad file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror}")
    if len(raw) < 8:
        raise FormatError(f"{path}: {len(raw)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise FormatError(f"{path}: header length {n} exceeds the file ({len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"{path}: header is not valid JSON: {e}")
    if not isinstance(header, dict):
        raise FormatError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{path}: __metadata__ must map strings to strings")
    data = memoryview(raw)[8 + n:]
    tensors = {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise FormatError(f"{path}: tensor {name!r}: needs dtype, shape, data_offsets[2]")
        if dtype not in _NP_DTYPES:
            raise FormatError(f"{path}: tensor {name!r}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise FormatError(f"{path}: tensor {name!r}: bad shape {shape!r}")
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= len(data)):
            raise FormatError(f"{path}: tensor {name!r}: data_offsets [{begin}, {end}] "
                              f"outside the {len(data)} data bytes")
        np_dtype = np.dtype(_NP_DTYPES[dtype])
        count = math.prod(shape)
        if end - begin != count * np_dtype.itemsize:
            raise FormatError(f"{path}: tensor {name!r}: {end - begin} bytes for shape "
                              f"{shape} of {dtype} (expected {count * np_dtype.itemsize})")
        arr = np.frombuffer(data, np_dtype, count, begin).reshape(shape)
        if dtype == "BF16":  # bfloat16 is the top half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))
    return tensors, meta


# ----------------------------------------------------------------------------
# the model's parameters and config


def boundary_shapes(b, d):
    """{name: shape} of boundary b's encoder and decoder tensors (none for none/truncate)."""
    if not b["has_encoder_decoder"]:
        return {}
    pre, k, m = f"model.boundaries.{b['index']}.", b["k"], b["halves_hidden"]
    shapes = {}
    if b["encoder_norm"]:
        shapes[pre + "encoder.norm.weight"] = [d]
    if m == 0:  # one linear map each way
        shapes[pre + "encoder.weight"] = [k, d]
        shapes[pre + "decoder.weight"] = [d, k]
    else:  # two layers each way, silu between
        shapes[pre + "encoder.fc1.weight"] = [m, d]
        shapes[pre + "encoder.fc2.weight"] = [k, m]
        shapes[pre + "decoder.fc1.weight"] = [m, k]
        shapes[pre + "decoder.fc2.weight"] = [d, m]
    return shapes


def token_channel_shapes(cfg, s):
    """{name: shape} of stage s's token channel tensors (s >= 1; none for kind none)."""
    V, d, tc = cfg["vocab_size"], cfg["hidden_size"], cfg["token_channel"]
    pre = f"model.token_channels.{s}."
    if tc["kind"] == "learned":
        return {pre + "table.weight": [V, d]}
    if tc["kind"] == "factorized":
        return {pre + "table.weight": [V, tc["rank"]], pre + "proj.weight": [d, tc["rank"]]}
    if tc["kind"] == "fixed":
        return {pre + "fixed_table": [V, d]}  # not a parameter: see fixed_names
    return {}


def fixed_names(cfg):
    """Names of the exported tensors that are not parameters (no gradient): the fixed tables."""
    if cfg["token_channel"]["kind"] != "fixed":
        return []
    return [f"model.token_channels.{s}.fixed_table" for s in range(1, len(cfg["layers_per_stage"]))]


def param_shapes(cfg):
    """{name: shape} of every tensor the export must have, in model order.

    Includes the fixed token tables, which are not parameters (see fixed_names)."""
    V, d, F, L = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    shapes = {"model.embed_tokens.weight": [V, d]}
    for i in range(L):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = [d]
        for m in "qkvo":
            shapes[p + f"self_attn.{m}_proj.weight"] = [d, d]
        shapes[p + "post_attention_layernorm.weight"] = [d]
        shapes[p + "mlp.gate_proj.weight"] = [F, d]
        shapes[p + "mlp.up_proj.weight"] = [F, d]
        shapes[p + "mlp.down_proj.weight"] = [d, F]
        for b in cfg["boundaries"]:
            if b["after_layer"] == i:
                shapes.update(boundary_shapes(b, d))
                shapes.update(token_channel_shapes(cfg, b["index"] + 1))  # the next stage's
    shapes["model.norm.weight"] = [d]
    shapes["lm_head.weight"] = [V, d]
    return shapes


def load_config(export_dir):
    """config.json flattened into the fields the model uses; FormatError if inconsistent."""
    path = os.path.join(export_dir, "config.json")
    try:
        with open(path) as f:
            raw = json.load(f)
        cfg = {key: raw[key] for key in ("vocab_size", "hidden_size", "intermediate_size",
                                         "num_hidden_layers", "num_attention_heads",
                                         "rms_norm_eps", "rope_theta")}
        cfg["head_dim"] = raw.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
        cfg["layers_per_stage"] = list(raw["resbm"]["layers_per_stage"])
        cfg["boundaries"] = [dict(b) for b in raw["resbm"]["boundaries"]]
        # older exports have no token channel: none
        cfg["token_channel"] = dict(raw["resbm"].get("token_channel", {"kind": "none"}))
        cfg["init_std"] = raw["resbm"]["job_config"]["model"]["init_std"]
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror}")
    except ValueError as e:
        raise FormatError(f"{path}: not valid JSON: {e}")
    except (KeyError, TypeError) as e:
        raise FormatError(f"{path}: missing or malformed field {e}")
    ints = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "head_dim")
    if not all(isinstance(cfg[key], int) and cfg[key] > 0 for key in ints) or not all(
            isinstance(cfg[key], (int, float)) for key in ("rms_norm_eps", "rope_theta")):
        raise FormatError(f"{path}: {ints} must be positive integers, rms_norm_eps and rope_theta numbers")
    if not all(isinstance(n, int) and n > 0 for n in cfg["layers_per_stage"]) or not all(
            isinstance(b, dict) for b in cfg["boundaries"]):
        raise FormatError(f"{path}: resbm.layers_per_stage must be positive integers, boundaries objects")
    cfg["boundaries"].sort(key=lambda b: b["index"] if isinstance(b.get("index"), int) else -1)
    d, H, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["head_dim"]
    if H * hd != d or hd % 2:
        raise FormatError(f"{path}: {H} heads x head_dim {hd} != hidden_size {d} (or odd head_dim)")
    stages = cfg["layers_per_stage"]
    if sum(stages) != cfg["num_hidden_layers"] or len(cfg["boundaries"]) != len(stages) - 1:
        raise FormatError(f"{path}: layers_per_stage {stages} does not fit "
                          f"{cfg['num_hidden_layers']} layers / {len(cfg['boundaries'])} boundaries")
    last = -1
    for s, b in enumerate(cfg["boundaries"]):
        last += stages[s]
        # older exports lack the boundary-half variants: no encoder norm, linear halves
        b.setdefault("encoder_norm", False)
        b.setdefault("halves_hidden", 0)
        try:
            ok = (b["index"] == s and b["after_layer"] == last
                  and b["kind"] in ("resbm", "none", "bottleneck", "truncate")
                  and b["wire_dtype"] in WIRE_DTYPES
                  and (b["kind"] == "none" or b["k"] * b["ratio"] == d)
                  and b["has_encoder_decoder"] == (b["kind"] in ("resbm", "bottleneck"))
                  and isinstance(b["encoder_norm"], bool)
                  and isinstance(b["halves_hidden"], int) and not isinstance(b["halves_hidden"], bool)
                  and b["halves_hidden"] >= 0)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise FormatError(f"{path}: boundary {s} is inconsistent: {b}")
    tc = cfg["token_channel"]
    if tc.get("kind") not in ("none", "learned", "fixed", "factorized") or (
            tc["kind"] == "factorized" and not (
                isinstance(tc.get("rank"), int) and not isinstance(tc["rank"], bool) and tc["rank"] > 0)):
        raise FormatError(f"{path}: resbm.token_channel is inconsistent: {tc}")
    std = cfg["init_std"]
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std):
        raise FormatError(f"{path}: resbm.job_config.model.init_std must be a finite number, got {std!r}")
    return cfg


def load_model(export_dir, dtype=torch.float64):
    """(cfg, {name: tensor}, [fixed-table failures]) from an export directory.

    The parameters are leaf tensors with requires_grad. The fixed token tables are not
    parameters: they are regenerated from the rule (fixed_token_table), held without a
    gradient, and each stored table that differs from its regenerated one is a failure."""
    cfg = load_config(export_dir)
    path = os.path.join(export_dir, "model.safetensors")
    tensors, _ = load_safetensors(path)
    want = param_shapes(cfg)
    missing = [n for n in want if n not in tensors]
    extra = [n for n in tensors if n not in want]
    if missing or extra:
        raise FormatError(f"{path}: missing tensors {missing}, unexpected tensors {extra}")
    fixed = fixed_names(cfg)
    params, failures = {}, []
    for name, shape in want.items():
        if list(tensors[name].shape) != shape:
            raise FormatError(f"{path}: {name} has shape {list(tensors[name].shape)}, expected {shape}")
        if name not in fixed:
            params[name] = tensors[name].to(dtype).requires_grad_(True)
            continue
        s = int(name.split(".")[2])  # model.token_channels.{s}.fixed_table
        table = fixed_token_table(s, cfg["vocab_size"], cfg["hidden_size"], cfg["init_std"])  # (V, d) f32
        stored = tensors[name]
        if stored.dtype != torch.float32:
            failures.append(f"{name} is {stored.dtype}, expected float32")
        else:
            bad = (stored.numpy().view(np.uint32) != table.view(np.uint32)).sum()  # bitwise
            if bad:
                failures.append(f"{name}: {bad} of {table.size} entries differ from the rule")
        params[name] = torch.from_numpy(table).to(dtype)  # the rule's table, no gradient
    return cfg, params, failures


# ----------------------------------------------------------------------------
# the fixed token table


_U64 = np.uint64


def splitmix64(z):
    """SplitMix64 finalizer of each element of a uint64 array (arithmetic mod 2^64)."""
    with np.errstate(over="ignore"):
        z = z + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def fixed_token_table(s, V, d, init_std):
    """Stage s's fixed table (V, d) float32: +init_std where bit 63 of
    splitmix64((s * V + v) * d + j) is 0, else -init_std."""
    with np.errstate(over="ignore"):
        base = _U64(s) * _U64(V) * _U64(d)  # (s * V + v) * d + j = s*V*d + (v*d + j)
        z = base + np.arange(V * d, dtype=np.uint64)  # (V*d), row-major v*d + j
    negative = (splitmix64(z) >> _U64(63)).astype(bool)  # (V*d)
    std = np.float32(init_std)
    return np.where(negative, -std, std).astype(np.float32).reshape(V, d)  # (V, d)


# ----------------------------------------------------------------------------
# the model math


def rms_norm(x, weight, eps):
    # x: (..., d)  weight: (d)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight  # (..., d)


def rotary_tables(T, hd, theta, dtype):
    """cos, sin of shape (T, hd), Hugging Face 'rotate_half' layout (computed in float64)."""
    inv_freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)  # (hd/2)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]  # (T, hd/2)
    angle = torch.cat([angle, angle], dim=-1)  # (T, hd)
    return angle.cos().to(dtype), angle.sin().to(dtype)  # (T, hd), (T, hd)


def rotate_half(x):
    # x: (B, H, T, hd)
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (B, H, T, hd)


def apply_rotary(x, cos, sin):
    # x: (B, H, T, hd)  cos, sin: (T, hd)
    return x * cos + rotate_half(x) * sin  # (B, H, T, hd)


def attention(x, p, prefix, cfg, cos, sin):
    # x: (B, T, d)
    B, T, d = x.shape
    H, hd = cfg["num_attention_heads"], cfg["head_dim"]

    def heads(name):
        y = x @ p[prefix + f"self_attn.{name}_proj.weight"].T  # (B, T, d)
        return y.view(B, T, H, hd).transpose(1, 2)  # (B, H, T, hd)

    q = apply_rotary(heads("q"), cos, sin)  # (B, H, T, hd)
    k = apply_rotary(heads("k"), cos, sin)  # (B, H, T, hd)
    v = heads("v")  # (B, H, T, hd)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)  # (B, H, T, T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T)
    att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # (B, H, T, T)
    y = (att @ v).transpose(1, 2).reshape(B, T, d)  # (B, T, d)
    return y @ p[prefix + "self_attn.o_proj.weight"].T  # (B, T, d)


def mlp(x, p, prefix):
    # x: (B, T, d)
    gate = x @ p[prefix + "mlp.gate_proj.weight"].T  # (B, T, F)
    up = x @ p[prefix + "mlp.up_proj.weight"].T  # (B, T, F)
    return (Fn.silu(gate) * up) @ p[prefix + "mlp.down_proj.weight"].T  # (B, T, d)


def block(h, p, i, cfg, cos, sin):
    # h: (B, T, d)
    pre, eps = f"model.layers.{i}.", cfg["rms_norm_eps"]
    h = h + attention(rms_norm(h, p[pre + "input_layernorm.weight"], eps), p, pre, cfg, cos, sin)  # (B, T, d)
    h = h + mlp(rms_norm(h, p[pre + "post_attention_layernorm.weight"], eps), p, pre)  # (B, T, d)
    return h  # (B, T, d)


# --- the wire: what crosses a pipeline boundary, rounded both ways

WIRE_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": "int8"}


def wire_round(z, wire_dtype):
    """z rounded to the wire dtype and back to z's dtype."""
    # z: (..., k)
    if wire_dtype == "fp32":
        return z  # (..., k)
    if wire_dtype in ("bf16", "fp16"):
        return z.to(WIRE_DTYPES[wire_dtype]).to(z.dtype)  # (..., k), round to nearest even
    scale = z.abs().amax(dim=-1, keepdim=True) / 127  # (..., 1), one scale per token
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # (..., 1), a zero row stays zero
    q = torch.clamp(torch.round(z / safe), -127, 127)  # (..., k)
    return q * scale  # (..., k)


class Wire(torch.autograd.Function):
    """Identity whose value (forward) and gradient (backward) are both wire-rounded."""

    @staticmethod
    def forward(ctx, z, wire_dtype):
        ctx.wire_dtype = wire_dtype
        return wire_round(z, wire_dtype)

    @staticmethod
    def backward(ctx, grad_z):
        return wire_round(grad_z, ctx.wire_dtype), None


def half(x, p, prefix, m):
    """One boundary half: x @ W^T if m == 0, else silu(x @ fc1^T) @ fc2^T. x: (B, T, n) -> (B, T, n')."""
    if m == 0:
        return x @ p[prefix + "weight"].T  # (B, T, n'), W: (n', n)
    u = Fn.silu(x @ p[prefix + "fc1.weight"].T)  # (B, T, m), fc1: (m, n)
    return u @ p[prefix + "fc2.weight"].T  # (B, T, n'), fc2: (n', m)


def boundary(h, p, b, eps):
    """Sender, wire, receiver of one boundary. h: (B, T, d) -> (B, T, d)."""
    kind, d = b["kind"], h.shape[-1]
    if kind == "none":
        return Wire.apply(h, b["wire_dtype"])  # (B, T, d)
    k, m, pre = b["k"], b["halves_hidden"], f"model.boundaries.{b['index']}."
    if kind in ("resbm", "bottleneck"):
        x = rms_norm(h, p[pre + "encoder.norm.weight"], eps) if b["encoder_norm"] else h  # (B, T, d)
        e = half(x, p, pre + "encoder.", m)  # (B, T, k)
    if kind == "resbm":
        z = h[..., :k] + e  # (B, T, k), the identity path takes h, not the normed x
    elif kind == "bottleneck":
        z = e  # (B, T, k)
    else:  # truncate
        z = h[..., :k]  # (B, T, k)
    z = Wire.apply(z, b["wire_dtype"])  # (B, T, k)
    padded = Fn.pad(z, (0, d - k))  # (B, T, d)
    if kind == "resbm":
        return padded + half(z, p, pre + "decoder.", m)  # (B, T, d)
    if kind == "bottleneck":
        return half(z, p, pre + "decoder.", m)  # (B, T, d)
    return padded  # (B, T, d)


def token_channel(cfg, p, s, ids):
    """T_s[ids], what stage s (>= 1) adds to its input; None for kind none."""
    # ids: (B, T)
    kind, pre = cfg["token_channel"]["kind"], f"model.token_channels.{s}."
    if kind == "learned":
        return p[pre + "table.weight"][ids]  # (B, T, d)
    if kind == "factorized":
        return p[pre + "table.weight"][ids] @ p[pre + "proj.weight"].T  # (B, T, m) @ (m, d) -> (B, T, d)
    if kind == "fixed":
        return p[pre + "fixed_table"][ids]  # (B, T, d)
    return None


def forward(cfg, p, ids, targets=None):
    """logits (B, T, V), and the mean cross-entropy over all B*T tokens if targets is given."""
    # ids, targets: (B, T)
    B, T = ids.shape
    dtype = p["model.embed_tokens.weight"].dtype
    cos, sin = rotary_tables(T, cfg["head_dim"], cfg["rope_theta"], dtype)  # (T, hd)
    after = {b["after_layer"]: b for b in cfg["boundaries"]}
    h = p["model.embed_tokens.weight"][ids]  # (B, T, d)
    for i in range(cfg["num_hidden_layers"]):
        h = block(h, p, i, cfg, cos, sin)  # (B, T, d)
        if i in after:
            h = boundary(h, p, after[i], cfg["rms_norm_eps"])  # (B, T, d)
            t = token_channel(cfg, p, after[i]["index"] + 1, ids)  # (B, T, d) or None
            if t is not None:
                h = h + t  # (B, T, d), the next stage starts from h' + T_s[ids]
    h = rms_norm(h, p["model.norm.weight"], cfg["rms_norm_eps"])  # (B, T, d)
    logits = h @ p["lm_head.weight"].T  # (B, T, V)
    if targets is None:
        return logits, None
    loss = Fn.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))  # (), over N rows
    return logits, loss


def loss_and_grads(cfg, p, ids, targets):
    """(logits, loss, {name: gradient}) by autograd on the leaf parameters (not the fixed tables)."""
    for t in p.values():
        t.grad = None
    logits, loss = forward(cfg, p, ids, targets)
    loss.backward()
    grads = {n: (t.grad if t.grad is not None else torch.zeros_like(t))
             for n, t in p.items() if t.requires_grad}
    return logits.detach(), loss.detach(), grads


# ----------------------------------------------------------------------------
# comparison against a C++ probe

LOGITS_TOL, LOSS_TOL, GRAD_TOL = 1e-5, 1e-5, 1e-4


def load_probe(path, cfg):
    """(ids, targets, logits, loss, {name: grad}, metadata); FormatError if malformed."""
    t, meta = load_safetensors(path)
    for name in ("input_ids", "targets", "logits", "loss"):
        if name not in t:
            raise FormatError(f"{path}: missing tensor {name!r}")
    ids, targets = t["input_ids"], t["targets"]
    if ids.dtype != torch.int64 or ids.dim() != 2 or targets.shape != ids.shape:
        raise FormatError(f"{path}: input_ids/targets must be I64 of one shape (B, T), got "
                          f"{list(ids.shape)} {ids.dtype} / {list(targets.shape)} {targets.dtype}")
    V = cfg["vocab_size"]
    for name, x in (("input_ids", ids), ("targets", targets)):
        if x.numel() and (x.min() < 0 or x.max() >= V):
            raise FormatError(f"{path}: {name} has ids outside [0, {V})")
    if t["loss"].numel() != 1:
        raise FormatError(f"{path}: loss has shape {list(t['loss'].shape)}, expected []")
    grads = {n[len("grad."):]: x for n, x in t.items() if n.startswith("grad.")}
    return ids, targets, t["logits"], float(t["loss"].reshape(())), grads, meta


def compare(ref_logits, ref_loss, ref_grads, cpp_logits, cpp_loss, cpp_grads):
    """Print one line per check; return the list of failure descriptions."""
    failures = []
    # logits
    if list(cpp_logits.shape) != list(ref_logits.shape):
        failures.append(f"logits shape {list(cpp_logits.shape)} != {list(ref_logits.shape)}")
        print(f"logits:    shape mismatch {list(cpp_logits.shape)} vs {list(ref_logits.shape)}")
    else:
        diff = (ref_logits.double() - cpp_logits.double()).abs().max().item()
        tol = LOGITS_TOL * max(1.0, ref_logits.abs().max().item())
        print(f"logits:    max|ref-cpp| = {diff:.3e}  (tol {tol:.3e})")
        if not diff <= tol:
            failures.append(f"logits max|diff| {diff:.3e} > {tol:.3e}")
    # loss
    ref_loss = float(ref_loss)
    diff = abs(ref_loss - cpp_loss)
    tol = LOSS_TOL * abs(ref_loss)
    print(f"loss:      ref {ref_loss:.10f} cpp {cpp_loss:.10f} |diff| = {diff:.3e}  (tol {tol:.3e})")
    if not diff <= tol:
        failures.append(f"loss |diff| {diff:.3e} > {tol:.3e}")
    # gradient names
    missing = [n for n in ref_grads if n not in cpp_grads]
    extra = [n for n in cpp_grads if n not in ref_grads]
    print(f"grad names: {len(ref_grads)} model tensors, {len(cpp_grads)} in probe, "
          f"missing {missing or 'none'}, unexpected {extra or 'none'}")
    if missing or extra:
        failures.append(f"gradients missing from probe {missing}, unexpected in probe {extra}")
    # gradient values
    worst, worst_name = 0.0, None
    for name, ref in ref_grads.items():
        if name not in cpp_grads:
            continue
        cpp = cpp_grads[name]
        if list(cpp.shape) != list(ref.shape):
            failures.append(f"grad.{name} shape {list(cpp.shape)} != {list(ref.shape)}")
            continue
        ref, cpp = ref.double(), cpp.double()
        rel = ((ref - cpp).norm() / max(ref.norm().item(), 1e-12)).item()
        if not rel <= GRAD_TOL:
            failures.append(f"grad.{name} relative error {rel:.3e} > {GRAD_TOL:.0e}")
        if not rel <= worst:  # also catches NaN
            worst, worst_name = rel, name
    print(f"gradients: worst ||ref-cpp||/||ref|| = {worst:.3e} at grad.{worst_name}  (tol {GRAD_TOL:.0e})")
    return failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--model", required=True, help="export directory (config.json, model.safetensors)")
    ap.add_argument("--probe", required=True, help="probe safetensors written by the C++ code")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    dtype = getattr(torch, args.dtype)
    try:
        cfg, params, fixed_failures = load_model(args.model, dtype)
        ids, targets, cpp_logits, cpp_loss, cpp_grads, meta = load_probe(args.probe, cfg)
    except FormatError as e:
        print(f"reference: malformed input: {e}", file=sys.stderr)
        return 2
    B, T = ids.shape
    wires = sorted({b["wire_dtype"] for b in cfg["boundaries"]})
    print(f"model:     {args.model}  d={cfg['hidden_size']} L={cfg['num_hidden_layers']} "
          f"stages={cfg['layers_per_stage']} boundaries="
          f"{[(b['kind'], b.get('k'), b['wire_dtype']) for b in cfg['boundaries']]}")
    halves = [f"{b['index']}: encoder_norm={b['encoder_norm']} halves_hidden={b['halves_hidden']}"
              for b in cfg["boundaries"] if b["has_encoder_decoder"]]
    print(f"halves:    {', '.join(halves) or 'none'}")
    tc = cfg["token_channel"]
    print(f"token:     channel {tc['kind']}" + (f", rank {tc['rank']}" if tc["kind"] == "factorized" else "")
          + (f", init_std {cfg['init_std']}" if tc["kind"] == "fixed" else ""))
    for name in fixed_names(cfg):
        verdict = "DIFFERS from the rule" if any(name in f for f in fixed_failures) else "equals the rule's"
        print(f"fixed:     stored {name} {verdict}")
    print(f"probe:     {args.probe}  batch {B}x{T}, wire_dtype={meta.get('wire_dtype', '?')}, "
          f"microbatches={meta.get('microbatches', '?')}, reference dtype {args.dtype}")
    if "wire_dtype" in meta and wires and wires != [meta["wire_dtype"]]:
        print(f"warning:   probe wire_dtype {meta['wire_dtype']} != config's {wires}")
    logits, loss, grads = loss_and_grads(cfg, params, ids, targets)
    failures = fixed_failures + compare(logits, loss, grads, cpp_logits, cpp_loss, cpp_grads)
    if failures:
        print("reference: FAILED " + "; ".join(failures))
        return 1
    print("reference: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
