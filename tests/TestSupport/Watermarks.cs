namespace Recommender.TestSupport;

public static class Watermarks
{
    /// <summary>Waits into the next whole second: a snapshot takes the log blobs of the seconds before its watermark.</summary>
    public static Task PastTheSecondAsync() => Task.Delay(TimeSpan.FromMilliseconds(1_100));
}
