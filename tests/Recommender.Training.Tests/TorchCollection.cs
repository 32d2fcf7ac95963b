namespace Recommender.Training.Tests;

/// <summary>
/// Tests that train run one at a time: libtorch's random generator (dropout, initialisation) is global to
/// the process, so two trainings at once would draw from each other's sequence and lose determinism.
/// </summary>
[CollectionDefinition("Torch", DisableParallelization = true)]
public sealed class TorchCollection;
