namespace Recommender.Training;

/// <summary>Figures written into metrics and reports as JSON, which has no NaN or infinity.</summary>
public static class JsonNumbers
{
    /// <summary>The value, or null where it is undefined (a slice with no users, an interval over one seed, a ratio to 0).</summary>
    public static double? Finite(double value) => double.IsFinite(value) ? value : null;
}
