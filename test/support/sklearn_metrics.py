"""scikit-learn's metrics of a classification, for test/evaluation.test.ts.

Reads {"y_true": [...], "y_pred": [...], "top_k": [[label, ...], ...], "k": K} on stdin
and prints scikit-learn's accuracy, top-k accuracy for k = 1..K, per-class precision,
recall, F1 and support, their macro and weighted averages, and the confusion matrix.
Top-k is given the stored ranking as scores (K - position; unlisted labels lowest), so
that scikit-learn ranks exactly what objinfer stored.
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

assert sklearn.__version__ == sys.argv[1], sklearn.__version__
data = json.load(sys.stdin)
y_true, y_pred, ranked, K = data["y_true"], data["y_pred"], data["top_k"], data["k"]
labels = sorted(set(y_true) | set(y_pred))
every = sorted(set(labels) | {label for row in ranked for label in row})
column = {label: i for i, label in enumerate(every)}
scores = np.full((len(y_true), len(every)), -1.0)
for i, row in enumerate(ranked):
    for position, label in enumerate(row):
        scores[i, column[label]] = K - position
precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)


def averaged(how):
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=how, zero_division=0)
    return {"precision": p, "recall": r, "f1": f}


print(json.dumps({
    "accuracy": accuracy_score(y_true, y_pred),
    "topK": [top_k_accuracy_score(y_true, scores, k=k, labels=every) for k in range(1, K + 1)],
    "labels": labels,
    "precision": precision.tolist(),
    "recall": recall.tolist(),
    "f1": f1.tolist(),
    "support": support.tolist(),
    "macro": averaged("macro"),
    "weighted": averaged("weighted"),
    "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
}))
