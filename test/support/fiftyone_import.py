"""Reads an `objinfer export --format fiftyone` folder with FiftyOne's own importer
(FiftyOneImageClassificationDatasetImporter, as Dataset.from_dir and merge_dir use it)
and prints each sample's image path and parsed Classification as JSON.
No database is needed: the importer parses the files; only adding samples to a dataset
needs MongoDB, which cannot be installed here."""
import json
import sys

import fiftyone
import fiftyone.core.labels as fol
import fiftyone.utils.data as foud

folder, version = sys.argv[1], sys.argv[2]
assert fiftyone.__version__ == version, fiftyone.__version__


def read(labels_path):
    importer = foud.FiftyOneImageClassificationDatasetImporter(dataset_dir=folder, data_path="data.json", labels_path=labels_path)
    samples = {}
    with importer:
        for path, _metadata, label in importer:
            assert isinstance(label, fol.Classification), type(label)
            samples[path] = {"label": label.label, "confidence": label.confidence, "model_version": label.get_field("model_version") if label.has_field("model_version") else None}
    return samples


print(json.dumps({"predictions": read("labels.json"), "ground_truth": read("ground_truth.json")}))
