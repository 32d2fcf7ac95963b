using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.Serving.Tests;

public sealed class ModelRegistryTests(ModelFixture models) : IClassFixture<ModelFixture>
{
    [Fact]
    public async Task A_published_run_is_promoted_and_its_manifest_says_how_to_call_it()
    {
        var registry = await ModelFixture.NewRegistryAsync();

        Assert.True(await RunPublisher.PublishAsync(registry, models.RunA, "v1", "snapshot-1", promote: true));

        var current = await registry.GetCurrentAsync();
        var (manifest, policy) = await registry.DownloadAsync("v1");
        Assert.Equal("v1", current!.Pointer.Version);
        Assert.Equal(("snapshot-1", 10), (manifest.DataSnapshot, manifest.MaxLength));
        Assert.Equal(["history", "user_tokens", "k", "candidate_tokens"], manifest.Inputs);
        Assert.Equal(["scores", "top_scores", "top_items", "item_embeddings", "candidate_scores"], manifest.Outputs);
        Assert.NotEmpty(manifest.ContentVocabulary!);
        Assert.Equal(models.Data.ItemIds, manifest.ItemIds);
        Assert.True(manifest.Metrics!.ContainsKey("ndcg@10"));
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(models.RunA, "policy.onnx")), policy);
    }

    [Fact]
    public async Task Versions_are_immutable()
    {
        var registry = await ModelFixture.NewRegistryAsync();
        await RunPublisher.PublishAsync(registry, models.RunA, "v1", "s", promote: false);

        await Assert.ThrowsAsync<InvalidOperationException>(() => RunPublisher.PublishAsync(registry, models.RunB, "v1", "s", promote: false));
    }

    [Fact]
    public async Task Of_two_promoters_who_read_the_same_pointer_only_one_wins()
    {
        var registry = await ModelFixture.NewRegistryAsync();
        await RunPublisher.PublishAsync(registry, models.RunA, "v1", "s", promote: true);
        await RunPublisher.PublishAsync(registry, models.RunB, "v2", "s", promote: false);
        await RunPublisher.PublishAsync(registry, models.RunB, "v3", "s", promote: false);
        var seen = await registry.GetCurrentAsync();

        var results = await Task.WhenAll(registry.PromoteAsync("v2", seen), registry.PromoteAsync("v3", seen));

        Assert.Single(results, won => won);
        Assert.Equal(results[0] ? "v2" : "v3", (await registry.GetCurrentAsync())!.Pointer.Version);
    }

    [Fact]
    public async Task An_incomplete_version_cannot_be_promoted()
    {
        var registry = await ModelFixture.NewRegistryAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() => registry.PromoteAsync("never-published", null));
    }
}
