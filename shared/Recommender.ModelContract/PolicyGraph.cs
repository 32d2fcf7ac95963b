namespace Recommender.ModelContract;

/// <summary>
/// The names of a published <c>policy.onnx</c>'s inputs and outputs: the training job's exporter writes them, serving
/// feeds and reads them, and the manifest lists the ones a model has (optional ones only when it has them).
/// </summary>
public static class PolicyGraph
{
    /// <summary>Input, int64 [batch, max length]: the item numbers of the history, left-padded with 0.</summary>
    public const string History = "history";

    /// <summary>Optional input, int64 [batch, tokens]: the user's profile tokens (the manifest's user vocabulary; 0 is padding).</summary>
    public const string UserTokens = "user_tokens";

    /// <summary>Input, int64 [1]: how many items <see cref="TopItems"/> holds.</summary>
    public const string K = "k";

    /// <summary>Optional input, int64 [candidates, tokens]: content tokens of items the model never saw (the manifest's content vocabulary).</summary>
    public const string CandidateTokens = "candidate_tokens";

    /// <summary>Output, float [batch, items + 1]: every item's score (padding and unseen-in-training items included).</summary>
    public const string Scores = "scores";

    /// <summary>Output, float [batch, k]: the scores of <see cref="TopItems"/>.</summary>
    public const string TopScores = "top_scores";

    /// <summary>Output, int64 [batch, k]: the best k item numbers, best first.</summary>
    public const string TopItems = "top_items";

    /// <summary>Output, float [items + 1, d]: the item vectors (row 0 padding), which user adaptation steps along.</summary>
    public const string ItemEmbeddings = "item_embeddings";

    /// <summary>Optional output, float [batch, candidates]: the scores of the items <see cref="CandidateTokens"/> describes.</summary>
    public const string CandidateScores = "candidate_scores";

    /// <summary>Optional output, float [batch, k]: a policy learned by RL, its per-item terms added to <see cref="TopScores"/>.</summary>
    public const string TopPolicyScores = "top_policy_scores";

    /// <summary>Optional output, int64 [items + 1]: each item's category number, which the policy head's repetition term counts.</summary>
    public const string ItemCategories = "item_categories";
}
