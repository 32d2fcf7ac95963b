#!/bin/sh
# After azd deploys: the Container Apps job runs the image azd just pushed, and the Function App starts
# executions with that image (TrainingJob__Image). azd's containerapp host targets apps, not jobs, so the
# job is updated here.
set -eu
image="${SERVICE_TRAINING_JOB_IMAGE_NAME:?azd did not report the training image}"
az containerapp job update --name "$TRAINING_JOB_NAME" --resource-group "$AZURE_RESOURCE_GROUP" --image "$image" --output none
az functionapp config appsettings set --name "$FUNCTION_APP_NAME" --resource-group "$AZURE_RESOURCE_GROUP" \
  --settings "TrainingJob__Image=$image" --output none
echo "training job $TRAINING_JOB_NAME now runs $image"
