namespace Recommender.Data;

/// <summary>
/// SASRec's split: for a user with at least 3 interactions the last is the test target, the one before
/// it the validation target, the rest training; users with fewer are training only. At test time the
/// history is training + the validation item.
/// </summary>
public sealed class LeaveOneOutSplit
{
    private LeaveOneOutSplit(int[][] train, int[] validation, int[] test)
    {
        Train = train;
        Validation = validation;
        Test = test;
    }

    public int[][] Train { get; }

    /// <summary>Validation target per user, 0 when the user has none.</summary>
    public int[] Validation { get; }

    /// <summary>Test target per user, 0 when the user has none.</summary>
    public int[] Test { get; }

    public static LeaveOneOutSplit Create(InteractionDataset data)
    {
        var n = data.UserCount;
        var train = new int[n][];
        var validation = new int[n];
        var test = new int[n];
        for (var u = 0; u < n; u++)
        {
            var s = data.Sequences[u];
            if (s.Length < 3)
            {
                train[u] = s;
                continue;
            }
            train[u] = s[..^2];
            validation[u] = s[^2];
            test[u] = s[^1];
        }
        return new LeaveOneOutSplit(train, validation, test);
    }

    /// <summary>Every user's history before the target of the given stage (for the test stage: training plus validation items).</summary>
    public int[][] Histories(EvaluationStage stage) => Enumerable.Range(0, Train.Length).Select(u => History(u, stage)).ToArray();

    /// <summary>The history seen before the target of the given stage.</summary>
    public int[] History(int user, EvaluationStage stage) =>
        stage == EvaluationStage.Validation ? Train[user] : [.. Train[user], Validation[user]];

    public int Target(int user, EvaluationStage stage) => stage == EvaluationStage.Validation ? Validation[user] : Test[user];

    /// <summary>Users that have a target at this stage.</summary>
    public IEnumerable<int> EvaluableUsers(EvaluationStage stage) =>
        Enumerable.Range(0, Train.Length).Where(u => Target(u, stage) != 0 && Train[u].Length > 0);
}

public enum EvaluationStage
{
    Validation,
    Test,
}
