// Everything the recommender runs on, in one resource group. Identities, not keys: the Function App and the
// training job each have a user-assigned identity with only the data roles they use.
param environmentName string
param location string
param tags object
param gpuProfile string
param retrainingSchedule string
param trainingImage string
param functionsRuntimeVersion string
param principalId string

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var useGpu = !empty(gpuProfile)
// Blob containers of StorageLayout and the model registry, plus the Function App's deployment packages.
var containers = ['eventlog', 'deadletter', 'ingest-state', 'training', 'models', 'deployments']
var eventHubName = 'interactions'
var consumerGroup = 'recommender'
var jobContainerName = 'training-job'
var placeholderImage = 'mcr.microsoft.com/k8se/quickstart-jobs:latest'

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

// ---------- Identities ----------
resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-func-${token}'
  location: location
  tags: tags
}

resource jobIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-job-${token}'
  location: location
  tags: tags
}

// ---------- Storage: event log, dead letters, snapshots, models, Durable hub, Event Hubs checkpoints ----------
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identities only
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for name in containers: {
  parent: blobService
  name: name
}]

// ---------- Event Hubs: interactions in ----------
resource eventHubs 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: 'evhns-${token}'
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard', capacity: 1 }
  properties: {
    disableLocalAuth: true // identities only
    minimumTlsVersion: '1.2'
  }
}

resource eventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubs
  name: eventHubName
  properties: {
    partitionCount: 8
    messageRetentionInDays: 7
  }
}

resource eventHubConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: eventHub
  name: consumerGroup
}

// ---------- Monitoring ----------
resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${token}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true // telemetry is sent with the app's identity
  }
}

// ---------- Training: registry, Container Apps environment (GPU profile), the manual-trigger job ----------
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'cr${token}'
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: {
    adminUserEnabled: false
  }
}

resource containerEnvironment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: 'cae-${token}'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
    workloadProfiles: concat([
      { name: 'Consumption', workloadProfileType: 'Consumption' }
    ], useGpu ? [
      { name: 'gpu', workloadProfileType: gpuProfile }
    ] : [])
  }
}

resource trainingJob 'Microsoft.App/jobs@2024-03-01' = {
  name: 'job-train-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'training-job' })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${jobIdentity.id}': {} }
  }
  properties: {
    environmentId: containerEnvironment.id
    workloadProfileName: useGpu ? 'gpu' : 'Consumption'
    configuration: {
      triggerType: 'Manual'
      replicaTimeout: 4 * 3600
      replicaRetryLimit: 0 // the orchestration retries, with a new candidate version
      manualTriggerConfig: { parallelism: 1, replicaCompletionCount: 1 }
      registries: [
        { server: registry.properties.loginServer, identity: jobIdentity.id }
      ]
    }
    template: {
      containers: [
        {
          name: jobContainerName
          image: empty(trainingImage) ? placeholderImage : trainingImage
          resources: useGpu && gpuProfile == 'Consumption-GPU-NC24-A100' ? { cpu: json('24'), memory: '220Gi' }
            : useGpu ? { cpu: json('8'), memory: '56Gi' } : { cpu: json('4'), memory: '8Gi' }
          env: [
            { name: 'TRAINING_STORAGE', value: storage.properties.primaryEndpoints.blob }
            { name: 'AZURE_CLIENT_ID', value: jobIdentity.properties.clientId }
          ]
        }
      ]
    }
  }
}

// The Function App may start, read and stop executions of this one job, nothing else.
resource jobStarterRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'training-job-starter', environmentName)
  properties: {
    roleName: 'Recommender training-job starter (${environmentName})'
    description: 'Start, watch and stop executions of the recommender training job.'
    type: 'CustomRole'
    assignableScopes: [resourceGroup().id]
    permissions: [
      {
        actions: [
          'Microsoft.App/jobs/read'
          'Microsoft.App/jobs/start/action'
          'Microsoft.App/jobs/stop/action'
          'Microsoft.App/jobs/executions/read'
        ]
      }
    ]
  }
}

// ---------- The Function App on Flex Consumption ----------
// ---------- Personalizer's subscription keys ----------
// Kept in Key Vault and read by the app's identity through a Key Vault reference, so no key sits in app settings. The
// secret is the operator's to set (README, Deploy); until it exists the reference does not resolve and the app refuses
// every Personalizer request.
resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-${token}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'functions' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${appIdentity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: appIdentity.id
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}deployments'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: appIdentity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 100, instanceMemoryMB: 2048 }
      runtime: { name: 'dotnet-isolated', version: functionsRuntimeVersion }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        // The host's storage (Durable hub, timers, Event Hubs checkpoints) and the app's data, by identity.
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: appIdentity.properties.clientId }
        { name: 'AZURE_CLIENT_ID', value: appIdentity.properties.clientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${appIdentity.properties.clientId};Authorization=AAD' }
        // Event Hubs trigger, by identity.
        { name: 'EventHubConnection__fullyQualifiedNamespace', value: '${eventHubs.name}.servicebus.windows.net' }
        { name: 'EventHubConnection__credential', value: 'managedidentity' }
        { name: 'EventHubConnection__clientId', value: appIdentity.properties.clientId }
        { name: 'EventHubName', value: eventHub.name }
        { name: 'EventHubConsumerGroup', value: eventHubConsumerGroup.name }
        // The learning loop: started on a schedule, on enough new events, or by POST /api/training.
        { name: 'RetrainingSchedule', value: retrainingSchedule }
        { name: 'NewEventsCheckSchedule', value: '0 */15 * * * *' }
        { name: 'PurgeSchedule', value: '0 5 * * * *' }
        { name: 'PersonalizerModelUpdateSchedule', value: '*/30 * * * * *' }
        { name: 'Personalizer__SubscriptionKeys', value: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=personalizer-subscription-keys)' }
        { name: 'TrainingJob__Launcher', value: 'containerapps' }
        { name: 'TrainingJob__SubscriptionId', value: subscription().subscriptionId }
        { name: 'TrainingJob__ResourceGroup', value: resourceGroup().name }
        { name: 'TrainingJob__JobName', value: trainingJob.name }
        { name: 'TrainingJob__Image', value: empty(trainingImage) ? placeholderImage : trainingImage }
      ]
    }
  }
}

// ---------- Role assignments: least privilege per identity ----------
var appRoles = [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]
resource appStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in appRoles: {
  name: guid(storage.id, appIdentity.id, role)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource appEventHubsReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHub.id, appIdentity.id, roles.eventHubsDataReceiver)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appIdentity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appKeyVaultSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, appIdentity.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appJobStarter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(trainingJob.id, appIdentity.id, jobStarterRole.id)
  scope: trainingJob
  properties: {
    roleDefinitionId: jobStarterRole.id
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The job reads snapshots and writes models (blobs only) and pulls its image.
resource jobStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, jobIdentity.id, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: jobIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource jobAcrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, jobIdentity.id, roles.acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
    principalId: jobIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The deploying user: send test events and read the data from a workstation (optional).
resource userEventHubsSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(eventHub.id, principalId, roles.eventHubsDataSender)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: principalId
  }
}

resource userBlobReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(storage.id, principalId, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: principalId
  }
}

output functionAppName string = functionApp.name
output functionAppUrl string = 'https://${functionApp.properties.defaultHostName}'
output registryLoginServer string = registry.properties.loginServer
output registryName string = registry.name
output trainingJobName string = trainingJob.name
output storageAccountName string = storage.name
output eventHubsNamespace string = eventHubs.name
output eventHubName string = eventHub.name
output applicationInsightsName string = appInsights.name
output keyVaultName string = keyVault.name
