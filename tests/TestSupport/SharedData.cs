namespace Recommender.TestSupport;

/// <summary>
/// The real data sets in ../shared/data beside the repository (research-only licences: read there, never
/// copied in). CI lays ../shared beside the clone; a missing folder fails the test with the reason.
/// </summary>
public static class SharedData
{
    public static string Path(params string[] parts) => Beside(["data", .. parts]);

    /// <summary>A path under ../shared itself (the Personalizer specification, for one).</summary>
    public static string Beside(params string[] parts)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "Serverless.sln")))
            dir = dir.Parent;
        if (dir?.Parent is null)
            throw new InvalidOperationException("cannot find the repository root (Serverless.sln) above " + AppContext.BaseDirectory);
        var path = System.IO.Path.Combine([dir.Parent.FullName, "shared", .. parts]);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"shared data not found at {path}: the tests expect ../shared beside the repository");
        return path;
    }
}
