"""TEST-ONLY: the stand-in's TensorFlow, doing for an imported SavedModel what BigQuery does.

  signature DIR               -> {"inputs": [...], "outputs": [...]} of serving_default
  predict DIR H W FILE...     -> {FILE: [outputs...] or null when TensorFlow cannot decode it}

Images are read as the ML functions document: decoded (tf.io.decode_image, 3 channels),
scaled to [0, 1], resized to H x W (tf.image.resize, bilinear), one at a time.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402


def tensors(specs):
    return [
        {"name": name, "dtype": spec.dtype.name, "shape": [-1 if d is None else int(d) for d in spec.shape]}
        for name, spec in sorted(specs.items())
    ]


command, model, *rest = sys.argv[1:]
serving = tf.saved_model.load(model).signatures["serving_default"]
if command == "signature":
    print(json.dumps({"inputs": tensors(serving.structured_input_signature[1]), "outputs": tensors(serving.structured_outputs)}))
else:
    height, width, *files = rest
    (name,) = serving.structured_input_signature[1].keys()
    answers = {}
    for path in files:
        try:
            pixels = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            answers[path] = None
            continue
        pixels = tf.cast(pixels, tf.float32) / 255.0
        resized = tf.image.resize(pixels, [int(height), int(width)], method="bilinear", antialias=False)
        outputs = serving(**{name: resized[tf.newaxis]})
        answers[path] = {key: value[0].numpy().astype("float64").tolist() for key, value in outputs.items()}
    print(json.dumps(answers))
