#!/bin/sh
# Registers the default namespace and objinfer's search attributes (idempotent).
set -eu
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do echo 'waiting for temporal'; sleep 1; done
temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n default >/dev/null 2>&1 ||
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n default --retention 7d
for attribute in ObjinferPipeline=Keyword ObjinferBackend=Keyword ObjinferProject=Keyword ObjinferDataset=Keyword ObjinferModel=Keyword ObjinferStage=Keyword ObjinferImagesDone=Int; do
  temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" -n default \
    --name "${attribute%%=*}" --type "${attribute#*=}" || true   # exists on restart
done
echo 'namespace ready'
