#!/usr/bin/python3
"""The trained model against an independent implementation, with real processes.

Trains a small job with resbm-train (three uneven stages, ResBM boundaries), exports it with
`resbmctl export --checkpoint`, has resbm-probe write the C++ logits, loss and gradients on a
seeded batch (2 microbatches), and runs tests/reference/resbm_reference.py on them: logits and
loss within 1e-5, every gradient within 1e-4 relative. Five times: an fp32 wire checked against
a float64 reference, a bf16 wire (rounded both ways) against a float32 one, then three fp32
wires against float64 with the newer compression fields: a learned token channel with a normed
encoder input and two-layer halves (m = 16), a fixed (splitmix64) token channel, and a
factorized (rank 8) token channel on bottleneck boundaries. Then the NumPy example in
examples/python loads the first export. Run with /usr/bin/python3 (Debian's torch).
"""
import json
import os
import subprocess
import sys
import tempfile

SOURCE = os.environ.get("RESBM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BINARIES = os.path.join(os.environ.get("RESBM_BINARY_DIR", os.path.join(SOURCE, "build")), "bin")


def run(argv, cwd):
    print("$", " ".join(argv), flush=True)
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(done.stdout, flush=True)
    if done.returncode != 0:
        sys.exit(f"reference_test: {argv[0]} exited {done.returncode}")
    return done.stdout


def check(wire, reference_dtype, work, **compression):
    """One train -> export -> probe -> reference round; compression: extra or overriding
    fields of the job's compression section (token_channel, encoder_norm, halves_hidden, ...)."""
    config = {
        "name": f"reference-{os.path.basename(work).lower()}",
        "model": {"vocab_size": 256, "d_model": 64, "n_layers": 4, "n_heads": 2,
                  "mlp_hidden": 128, "seq_len": 32},
        "stages": {"layers_per_stage": [2, 1, 1]},
        "compression": {"kind": "COMPRESSION_KIND_RESBM", "ratio": 8, "wire_dtype": wire,
                        "init_std": 0.02},
        "training": {"steps": 20, "batch_size": 8, "microbatches": 2, "eval_every": 0,
                     "eval_batches": 1, "seed": 3},
    }
    config["compression"].update(compression)
    with open(os.path.join(work, "job.json"), "w") as f:
        json.dump(config, f)
    run([os.path.join(BINARIES, "resbm-train"), "--config=job.json", "--threads=1",
         "--checkpoint-dir=checkpoint", "--summary-json=summary.json", "--loss-csv=loss.csv"], work)
    run([os.path.join(BINARIES, "resbmctl"), "export", "--checkpoint=checkpoint", "--out=model"], work)
    run([os.path.join(BINARIES, "resbm-probe"), "--model=model", "--out=probe.safetensors",
         "--batch=4", "--microbatches=2", "--seed=9"], work)
    out = run([sys.executable, os.path.join(SOURCE, "tests/reference/resbm_reference.py"),
               "--model=model", "--probe=probe.safetensors", f"--dtype={reference_dtype}"], work)
    if "reference: OK" not in out:
        sys.exit("reference_test: the reference did not report OK")
    return work


def main():
    with tempfile.TemporaryDirectory(prefix="resbm_reference_") as root:
        for name, wire, dtype, compression in (
                ("WIRE_DTYPE_FP32", "WIRE_DTYPE_FP32", "float64", {}),
                ("WIRE_DTYPE_BF16", "WIRE_DTYPE_BF16", "float32", {}),
                ("LEARNED_NORM_HALVES", "WIRE_DTYPE_FP32", "float64",
                 {"token_channel": "TOKEN_CHANNEL_LEARNED", "encoder_norm": True, "halves_hidden": 16}),
                ("FIXED", "WIRE_DTYPE_FP32", "float64", {"token_channel": "TOKEN_CHANNEL_FIXED"}),
                ("FACTORIZED_BOTTLENECK", "WIRE_DTYPE_FP32", "float64",
                 {"token_channel": "TOKEN_CHANNEL_FACTORIZED", "token_channel_rank": 8,
                  "kind": "COMPRESSION_KIND_BOTTLENECK"})):
            work = os.path.join(root, name)
            os.makedirs(work)
            check(wire, dtype, work, **compression)
        out = run([sys.executable, os.path.join(SOURCE, "examples/python/load_export.py"),
                   "model"], os.path.join(root, "WIRE_DTYPE_FP32"))
        if "parameters:" not in out or "boundary 1 after layer 2" not in out:
            sys.exit("reference_test: the example did not describe the export")
    print("reference_test: OK")


if __name__ == "__main__":
    main()
