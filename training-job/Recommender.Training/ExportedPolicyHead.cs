namespace Recommender.Training;

/// <summary>
/// What the served graph holds of a policy head learned by RL (the RL stage's actor exports it, <see cref="PolicyExporter"/>
/// writes it): the sharpness e^s, each item's bias (popularity and content values, in logit·τ units), each item's category (-1: none).
/// </summary>
public sealed record ExportedPolicyHead(double Sharpness, float[] ItemBias, long[] ItemCategories);
