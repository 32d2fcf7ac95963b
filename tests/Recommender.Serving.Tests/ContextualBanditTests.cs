using System.IO.Hashing;
using System.Text;
using Recommender.Serving;

namespace Recommender.Serving.Tests;

public class ContextualBanditTests
{
    /// <summary>The hash of a feature pair as it was first defined: learned weights and exported models are keyed by it.</summary>
    private static ulong PairHash(string left, string right) => XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(left + "\u001e" + right));

    [Fact]
    public void Interaction_hashes_are_the_utf8_hash_of_each_pair_of_names()
    {
        // ASCII, non-ASCII, an unpaired surrogate at either end, and a name longer than the stack buffer.
        var longName = "a.description=" + new string('é', 900);
        List<Feature> context = [new("c.userId=user5", 1), new("c.city=Zürich", 0.5), new("c.odd=\ud800", 1)];
        List<Feature> action = [new("a.id=item17", 1), new("a.mood=\udc00calm", 2), new(longName, 1)];

        var (hashes, values, width) = ContextualBandit.InteractionRows(context, [action]);

        var whole = "whole:" + string.Join('\u001f', context.Select(f => f.Name).Order(StringComparer.Ordinal));
        var expected = action.SelectMany(a => context.Select(c => (Hash: PairHash(c.Name, a.Name), Value: c.Value * a.Value))
            .Prepend((Hash: PairHash("a", a.Name), Value: a.Value)).Append((Hash: PairHash(whole, a.Name), Value: a.Value))).ToList();
        Assert.Equal(expected.Count, width);
        Assert.Equal(expected.Select(e => unchecked((long)e.Hash)), hashes);
        Assert.Equal(expected.Select(e => (float)e.Value), values);
    }

    [Fact]
    public void Predictions_follow_what_was_learned_in_each_context()
    {
        var bandit = new ContextualBandit();
        List<Feature> morning = [new("c.time=morning", 1), new("c.device=mobile", 1)];
        List<Feature> evening = [new("c.time=evening", 1), new("c.device=mobile", 1)];
        List<Feature> news = [new("a.id=news", 1)], film = [new("a.id=film", 1)];
        for (var i = 0; i < 50; i++)
        {
            bandit.Learn(morning, news, 1);
            bandit.Learn(morning, film, 0);
            bandit.Learn(evening, news, 0);
            bandit.Learn(evening, film, 1);
        }

        var atMorning = bandit.Predict(morning, [news, film]);
        var atEvening = bandit.Predict(evening, [news, film]);

        Assert.True(atMorning[0] > atMorning[1] + 0.5, $"morning: {atMorning[0]} vs {atMorning[1]}");
        Assert.True(atEvening[1] > atEvening[0] + 0.5, $"evening: {atEvening[1]} vs {atEvening[0]}");
    }
}
