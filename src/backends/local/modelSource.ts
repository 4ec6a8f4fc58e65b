/**
 * The ONNX file the local backend runs for `model.source`: the file itself, or for a
 * TensorFlow SavedModel its checked conversion (models/savedModel.ts), made once per content.
 * The digest names the model's content: the SavedModel's, so that converting again gives the
 * same prediction version.
 */
import * as ort from 'onnxruntime-node';
import type { ModelSpec } from '../../config';
import { convertSavedModel, type ConvertedModel, type Progress } from '../../models/savedModel';
import { fileDigest } from './digest';
import { SESSION_OPTIONS } from './runtime';

export interface ModelSource {
  /** The ONNX file to run. */
  onnx: string;
  /** A hash of the model's content as the user gave it. */
  digest: string;
  /** For a SavedModel: how its conversion was checked against TensorFlow. */
  conversion?: ConvertedModel;
}

export async function modelSource(model: ModelSpec, progress?: Progress): Promise<ModelSource> {
  if (model.type === 'ONNX') return { onnx: model.source, digest: await fileDigest(model.source, 'sha256', 'hex') };
  const conversion = await convertSavedModel(model.source, runOnce, progress);
  return { onnx: conversion.onnx, digest: conversion.digest, conversion };
}

/** Runs an ONNX file once on one input, for the conversion check: every output, as float32. */
async function runOnce(onnx: string, input: Float32Array, shape: number[]): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(onnx, SESSION_OPTIONS);
  try {
    const outputs = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', input, shape) });
    return Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, Float32Array.from(tensor.data as Float32Array)]));
  } finally {
    await session.release();
  }
}
