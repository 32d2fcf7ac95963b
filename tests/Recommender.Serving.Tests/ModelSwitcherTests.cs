using Recommender.Serving;
using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.Serving.Tests;

public sealed class ModelSwitcherTests(ModelFixture models) : IClassFixture<ModelFixture>
{
    [Fact]
    public async Task Nothing_is_served_until_a_model_is_promoted()
    {
        var registry = await ModelFixture.NewRegistryAsync();
        using var switcher = new ModelSwitcher(registry);

        Assert.Equal(RefreshOutcome.NoModel, await switcher.RefreshAsync());
        Assert.Null(switcher.Acquire());

        await RunPublisher.PublishAsync(registry, models.RunA, "v1", "s", promote: true);
        Assert.Equal(RefreshOutcome.Swapped, await switcher.RefreshAsync());
        Assert.Equal(RefreshOutcome.Unchanged, await switcher.RefreshAsync());
        using var lease = switcher.Acquire()!.Value;
        Assert.Equal("v1", lease.Model.Version);
        Assert.Equal(10, lease.Model.Recommend(["item1", "item2"], 10).Count);
    }

    [Fact]
    public async Task A_corrupt_model_is_refused_and_the_last_good_one_keeps_serving()
    {
        var registry = await ModelFixture.NewRegistryAsync();
        await RunPublisher.PublishAsync(registry, models.RunA, "good", "s", promote: true);
        using var switcher = new ModelSwitcher(registry);
        await switcher.RefreshAsync();
        var manifest = RunPublisher.Manifest(models.RunA, "corrupt", "s");
        await registry.PublishAsync(manifest, new byte[] { 8, 1, 18, 4, 0xde, 0xad, 0xbe, 0xef });
        await registry.PromoteAsync("corrupt", await registry.GetCurrentAsync());

        var outcome = await switcher.RefreshAsync();

        Assert.Equal(RefreshOutcome.Refused, outcome);
        Assert.Equal("good", switcher.CurrentVersion);
        Assert.Contains("corrupt", switcher.LastError);
        using var lease = switcher.Acquire()!.Value;
        Assert.NotEmpty(lease.Model.Recommend(["item3"], 5));
    }

    [Fact]
    public async Task A_model_whose_item_map_does_not_fit_its_graph_fails_the_smoke_check()
    {
        var registry = await ModelFixture.NewRegistryAsync();
        var manifest = RunPublisher.Manifest(models.RunA, "mismatch", "s");
        var policy = await File.ReadAllBytesAsync(Path.Combine(models.RunA, "policy.onnx"));

        var error = Assert.Throws<InvalidModelException>(() => PolicyModel.Load(manifest with { ItemIds = manifest.ItemIds.Take(5).ToList() }, policy));

        Assert.Contains("smoke check", error.Message);
        _ = registry;
    }

    /// <summary>Requests never stop while versions are swapped under them; no request fails, each sees a whole model.</summary>
    [Fact]
    public async Task Hot_swaps_under_concurrent_requests_fail_no_request()
    {
        var registry = await ModelFixture.NewRegistryAsync();
        await RunPublisher.PublishAsync(registry, models.RunA, "v0", "s", promote: true);
        using var switcher = new ModelSwitcher(registry);
        await switcher.RefreshAsync();
        using var stop = new CancellationTokenSource();
        var served = 0;
        var versionsSeen = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();

        var requests = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var lease = switcher.Acquire()!.Value;
                var top = lease.Model.Recommend(["item1", "item5", "item9"], 10);
                Assert.Equal(10, top.Count);
                versionsSeen[lease.Model.Version] = true;
                Interlocked.Increment(ref served);
            }
        })).ToList();

        for (var v = 1; v <= 6; v++)
        {
            await RunPublisher.PublishAsync(registry, v % 2 == 0 ? models.RunA : models.RunB, $"v{v}", "s", promote: true);
            Assert.Equal(RefreshOutcome.Swapped, await switcher.RefreshAsync());
            await Task.Delay(50);
        }
        stop.Cancel();
        await Task.WhenAll(requests); // any failed request would throw here

        Assert.Equal("v6", switcher.CurrentVersion);
        Assert.True(versionsSeen.Count >= 3, $"requests saw {versionsSeen.Count} versions");
        Assert.True(served > 100, $"{served} requests");
    }
}
