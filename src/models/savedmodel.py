"""TensorFlow's side of objinfer's SavedModel support, run in the TensorFlow environment
objinfer manages (src/models/savedModel.ts installs it). Each command prints one JSON line.

  signature DIR                 the serving signature: inputs and outputs, dtype and shape
  convert DIR OUT.onnx OPSET    tf2onnx's conversion of the serving signature
  reference DIR N H W OUTDIR    N seeded inputs in [0, 1) and TensorFlow's outputs for them,
                                as raw float32, for the converted model to be checked against
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

SIGNATURE = "serving_default"


def serving(directory):
    loaded = tf.saved_model.load(directory)
    if SIGNATURE not in loaded.signatures:
        raise SystemExit(json.dumps({"error": f"the SavedModel has no '{SIGNATURE}' signature; it has {sorted(loaded.signatures.keys())}"}))
    return loaded, loaded.signatures[SIGNATURE]


def describe(specs):
    return [
        {"name": name, "dtype": spec.dtype.name, "shape": [-1 if d is None else int(d) for d in spec.shape.as_list()] if spec.shape.rank is not None else None}
        for name, spec in sorted(specs.items())
    ]


def signature(directory):
    _, fn = serving(directory)
    _, inputs = fn.structured_input_signature
    return {"inputs": describe(inputs), "outputs": describe(fn.structured_outputs)}


def convert(directory, out, opset):
    import tf2onnx  # noqa: F401  (imported here: the other commands do not need it)
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", directory, "--signature_def", SIGNATURE, "--output", out, "--opset", str(opset)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if "Error" in line or "error" in line]
        raise SystemExit(json.dumps({"error": (lines[-1] if lines else done.stderr.strip().splitlines()[-1:] or ["tf2onnx failed"])[-1]}))
    return {"onnx": out, "tf2onnx": tf2onnx.__version__, "tensorflow": tf.__version__}


def reference(directory, count, height, width, outdir):
    _, fn = serving(directory)
    _, inputs = fn.structured_input_signature
    (name,) = inputs.keys()
    rng = np.random.default_rng(20261206)
    batch = rng.random((count, height, width, 3), dtype=np.float32)
    outputs = fn(**{name: tf.constant(batch)})
    os.makedirs(outdir, exist_ok=True)
    batch.tofile(os.path.join(outdir, "inputs.f32"))
    shapes = {}
    for key, value in sorted(outputs.items()):
        array = value.numpy().astype(np.float32)
        array.tofile(os.path.join(outdir, f"output.{key}.f32"))
        shapes[key] = list(array.shape)
    return {"input": name, "inputShape": [count, height, width, 3], "outputs": shapes}


def main(argv):
    command, *args = argv
    if command == "signature":
        result = signature(args[0])
    elif command == "convert":
        result = convert(args[0], args[1], int(args[2]))
    elif command == "reference":
        result = reference(args[0], int(args[1]), int(args[2]), int(args[3]), args[4])
    else:
        raise SystemExit(json.dumps({"error": f"unknown command {command}"}))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
