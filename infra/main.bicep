// The recommender in one resource group: `azd up` (or `az deployment sub create -f infra/main.bicep`).
// What it creates and why is in the README's "Deploy to Azure" section.
targetScope = 'subscription'

@minLength(1)
@maxLength(32)
@description('Name of the environment (azd sets it); names and tags derive from it.')
param environmentName string

@minLength(1)
@description('Region of every resource. The GPU profile needs a region with serverless GPUs (e.g. westus3, swedencentral, australiaeast).')
param location string

@description('Serverless GPU profile for the training job; empty for CPU only.')
@allowed(['', 'Consumption-GPU-NC8as-T4', 'Consumption-GPU-NC24-A100'])
param gpuProfile string = 'Consumption-GPU-NC8as-T4'

@description('NCRONTAB schedule of the nightly retraining (UTC).')
param retrainingSchedule string = '0 0 3 * * *'

@description('Training-job image; azd replaces the placeholder on deploy.')
param trainingImage string = ''

@description('Function App .NET isolated runtime version on Flex Consumption (10.0; 9.0 or 8.0 where the region lacks it, with the project retargeted).')
@allowed(['8.0', '9.0', '10.0'])
param functionsRuntimeVersion string = '10.0'

@description('Principal id of the deploying user, given data access for local tools (optional).')
param principalId string = ''

var tags = { 'azd-env-name': environmentName }

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module resources 'resources.bicep' = {
  name: 'recommender-resources'
  scope: group
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    gpuProfile: gpuProfile
    retrainingSchedule: retrainingSchedule
    trainingImage: trainingImage
    functionsRuntimeVersion: functionsRuntimeVersion
    principalId: principalId
  }
}

output AZURE_RESOURCE_GROUP string = group.name
output FUNCTION_APP_NAME string = resources.outputs.functionAppName
output FUNCTION_APP_URL string = resources.outputs.functionAppUrl
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = resources.outputs.registryLoginServer
output AZURE_CONTAINER_REGISTRY_NAME string = resources.outputs.registryName
output TRAINING_JOB_NAME string = resources.outputs.trainingJobName
output STORAGE_ACCOUNT_NAME string = resources.outputs.storageAccountName
output EVENT_HUBS_NAMESPACE string = resources.outputs.eventHubsNamespace
output EVENT_HUB_NAME string = resources.outputs.eventHubName
output APPLICATIONINSIGHTS_NAME string = resources.outputs.applicationInsightsName
output KEY_VAULT_NAME string = resources.outputs.keyVaultName
