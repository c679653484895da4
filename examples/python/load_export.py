#!/usr/bin/env python3
"""Load a ResBM export (config.json + model.safetensors) with NumPy only and describe it.

    python3 load_export.py EXPORT_DIR
"""
import json, os, struct, sys
import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "U8": "u1"}

def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])          # u64 little-endian header length
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]            # relative to the end of the header
        a = np.frombuffer(raw[8 + n + begin:8 + n + end], DTYPES[t["dtype"]]).reshape(t["shape"])
        out[name] = (a.astype(np.uint32) << 16).view(np.float32) if t["dtype"] == "BF16" else a
    return out

export = sys.argv[1]
tensors = load_safetensors(os.path.join(export, "model.safetensors"))
config = json.load(open(os.path.join(export, "config.json")))
for name, a in tensors.items():
    print(f"{name:50s} {str(list(a.shape)):14s} {a.dtype}")
print("parameters:", sum(a.size for a in tensors.values()))
print("stages (blocks per stage):", config["resbm"]["layers_per_stage"])
for b in config["resbm"]["boundaries"]:
    print(f"boundary {b['index']} after layer {b['after_layer']}: {b['kind']} "
          f"r={b['ratio']} k={b['k']} wire={b['wire_dtype']}")
