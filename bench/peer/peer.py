"""The 20-line script a user would write instead of objinfer: a plain Python loop.

Pillow decodes and resizes (bilinear, to the model's 224x224), numpy makes the float32
NHWC batch in [0, 1], onnxruntime runs it (default session options), and the top-5 of
each image go into SQLite. Batches of 16. Prints one JSON line: images, seconds, rate.

    python bench/peer/peer.py MODEL.onnx OUT.sqlite IMAGE...
"""
import json
import sqlite3
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

BATCH = 16
SIZE = 224


def main() -> None:
    model, database, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    db = sqlite3.connect(database)
    db.execute("CREATE TABLE IF NOT EXISTS predictions (uri TEXT PRIMARY KEY, label INTEGER, score REAL, top_k TEXT)")
    started = time.perf_counter()
    for start in range(0, len(files), BATCH):
        chunk = files[start : start + BATCH]
        pixels = np.stack(
            [np.asarray(Image.open(f).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32) / 255.0 for f in chunk]
        )
        scores = session.run(None, {input_name: pixels})[0]
        rows = []
        for f, s in zip(chunk, scores):
            top = np.argsort(-s)[:5]
            rows.append((f, int(top[0]), float(s[top[0]]), json.dumps([[int(i), float(s[i])] for i in top])))
        db.executemany("INSERT OR IGNORE INTO predictions VALUES (?, ?, ?, ?)", rows)
        db.commit()
    seconds = time.perf_counter() - started
    print(json.dumps({"images": len(files), "seconds": seconds, "imagesPerSecond": len(files) / seconds}))


if __name__ == "__main__":
    main()
