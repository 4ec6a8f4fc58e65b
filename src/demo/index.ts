/**
 * The demo's inputs, all made here: the colour classifier (ONNX), its labels, a set of
 * generated images with one corrupt file, and a config that ties them together.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { colorClassifierOnnx, colorLabelsFile } from '../models/colorClassifier';
import { generateDemoImages, type GeneratedImage } from './images';

export interface DemoFiles {
  dir: string;
  configFile: string;
  images: GeneratedImage[];
  /** Files in the images folder that the demo did not make (added by the user). */
  added: number;
}

/** Writes the colour classifier and its labels; returns their paths. */
export async function writeColorModel(dir: string, inputSize = 32): Promise<{ model: string; labels: string }> {
  await mkdir(dir, { recursive: true });
  const model = join(dir, 'color-classifier.onnx');
  const labels = join(dir, 'color-classifier.labels.txt');
  await writeFile(model, colorClassifierOnnx(inputSize));
  await writeFile(labels, colorLabelsFile());
  return { model, labels };
}

export async function prepareDemo(dir: string, options: { fresh?: boolean; perLabel?: number } = {}): Promise<DemoFiles> {
  if (options.fresh) await rm(dir, { recursive: true, force: true });
  await writeColorModel(join(dir, 'models'));
  const images = await generateDemoImages(join(dir, 'images'), options.perLabel ?? 3);
  const config = {
    name: 'demo',
    backend: 'local',
    dataset: 'objinfer_demo',
    connection: 'lake-connection',
    bucket: 'objinfer-demo-models',
    objectTable: 'demo_images',
    sourceUris: ['images/*'],
    model: {
      name: 'color_classifier',
      type: 'ONNX',
      source: 'models/color-classifier.onnx',
      labels: 'models/color-classifier.labels.txt',
      preserveAspectRatio: false,
    },
    results: { table: 'predictions', topK: 3 },
    batch: { size: 8, concurrency: 2 },
    local: { warehouse: 'warehouse.duckdb', storage: 'storage' },
    // The images are named by their colour: `objinfer evaluate` reads the true class from the name.
    evaluation: { groundTruth: { fromPath: 'images/{label}-*' } },
  };
  const configFile = join(dir, 'objinfer.yaml');
  await writeFile(configFile, `# Written by \`objinfer demo\`; copy it to start your own.\n${stringify(config)}`);
  const made = new Set(images.map((image) => basename(image.file)));
  const added = (await readdir(join(dir, 'images'), { withFileTypes: true })).filter((entry) => !made.has(entry.name)).length;
  return { dir, configFile, images, added };
}
