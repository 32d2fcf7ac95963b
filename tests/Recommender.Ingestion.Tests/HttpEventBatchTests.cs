using System.Text;
using Recommender.Ingestion;

namespace Recommender.Ingestion.Tests;

[Trait("Kind", "Unit")]
public sealed class HttpEventBatchTests
{
    [Fact]
    public void An_array_is_split_into_the_raw_bytes_of_each_element()
    {
        var body = Encoding.UTF8.GetBytes("""[ {"a":1}, "x", [1,{"b":2}], null ]""");

        Assert.True(HttpEventBatch.TrySplit(body, 10, out var events, out _, out var kind));
        Assert.Equal(HttpBatchError.None, kind);

        Assert.Equal(["{\"a\":1}", "\"x\"", "[1,{\"b\":2}]", "null"], events.Select(e => Encoding.UTF8.GetString(e.Span)));
    }

    [Theory]
    [InlineData("""{"a":1}""", "must be a JSON array", HttpBatchError.Malformed)]
    [InlineData("""[{"a":1}""", "malformed JSON", HttpBatchError.Malformed)]
    [InlineData("""[1] [2]""", "malformed JSON", HttpBatchError.Malformed)]
    [InlineData("", "malformed JSON", HttpBatchError.Malformed)]
    [InlineData("[1,2,3,4]", "more than 3 events", HttpBatchError.TooManyEvents)]
    public void Bodies_that_are_not_one_array_are_refused_whole(string body, string error, HttpBatchError expected)
    {
        Assert.False(HttpEventBatch.TrySplit(Encoding.UTF8.GetBytes(body), 3, out _, out var message, out var kind));
        Assert.Contains(error, message);
        Assert.Equal(expected, kind);
    }

    [Fact]
    public async Task Reading_stops_at_the_byte_limit()
    {
        Assert.Null(await HttpEventBatch.ReadBoundedAsync(new MemoryStream(new byte[1001]), 1000));
        Assert.Equal(1000, (await HttpEventBatch.ReadBoundedAsync(new MemoryStream(new byte[1000]), 1000))!.Length);
    }
}
