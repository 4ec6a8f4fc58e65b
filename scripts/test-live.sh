#!/usr/bin/env bash
# The live suite: the tutorial against a real Google Cloud project. Runs only with
# GOOGLE_CLOUD_PROJECT and Application Default Credentials; otherwise says so and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
adc="${GOOGLE_APPLICATION_CREDENTIALS:-$HOME/.config/gcloud/application_default_credentials.json}"
if [ -z "${GOOGLE_CLOUD_PROJECT:-}" ]; then
  echo "test:live skipped: GOOGLE_CLOUD_PROJECT is not set (export it, and run 'gcloud auth application-default login')"
  exit 0
fi
if [ ! -f "$adc" ] && [ -z "${GOOGLE_CLOUD_ACCESS_TOKEN:-}" ]; then
  echo "test:live skipped: no Application Default Credentials at $adc (run 'gcloud auth application-default login')"
  exit 0
fi
if [ -z "${OBJINFER_LIVE_MODEL:-}" ] || [ -z "${OBJINFER_LIVE_LABELS:-}" ]; then
  echo "test:live skipped: set OBJINFER_LIVE_MODEL to the tutorial's ResNet-50 classification SavedModel (a folder or gs:// path) and OBJINFER_LIVE_LABELS to its ImageNet labels, one per line in output order (e.g. TF Hub's imagenet/resnet_v1_50/classification and ImageNetLabels.txt)"
  exit 0
fi
./scripts/setup-tools.sh
NODE_OPTIONS=--experimental-vm-modules npx jest --roots '<rootDir>/test-live' --testTimeout 3600000
