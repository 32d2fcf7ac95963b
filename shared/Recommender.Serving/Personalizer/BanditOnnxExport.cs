using Google.Protobuf;
using Onnx;
using Recommender.ModelContract;

namespace Recommender.Serving;

/// <summary>
/// Personalizer's learned bandit as an ONNX model, what <c>GET model</c> returns: a client can score actions offline
/// with any ONNX runtime and get <see cref="ContextualBandit.Predict"/>'s numbers.
/// <para>
/// The graph is the linear model itself. Its inputs are the hashed interaction features of each action in a context
/// (<see cref="ContextualBandit.InteractionRows"/>: <c>interaction_hashes</c> int64 and <c>interaction_values</c>
/// float, both [actions, features], padded with hash 0 and value 0); a <c>LabelEncoder</c> looks each hash up in the
/// learned weights (0 for a feature never learned, as <see cref="ContextualBandit.Predict"/>), and the weighted sum
/// over features is <c>scores</c> [actions]. The hashing stays outside the graph because ONNX has no xxHash.
/// </para>
/// </summary>
public static class BanditOnnxExport
{
    public const string HashesInput = "interaction_hashes";
    public const string ValuesInput = "interaction_values";
    public const string ScoresOutput = "scores";

    public static byte[] Export(ContextualBandit bandit)
    {
        // Hash 0 is the padding; a learned feature that hashed to 0 (one in 2^64) would be scored as padding.
        var weights = bandit.Weights.Where(w => w.Hash != 0).OrderBy(w => w.Hash).ToList();
        var keys = weights.Select(w => unchecked((long)w.Hash)).Prepend(0L).ToArray();
        var values = weights.Select(w => (float)w.Weight).Prepend(0f).ToArray();

        var g = new OnnxGraph();
        g.Input(HashesInput, TensorProto.Types.DataType.Int64, ["actions", "features"]);
        g.Input(ValuesInput, TensorProto.Types.DataType.Float, ["actions", "features"]);
        g.Output(ScoresOutput, TensorProto.Types.DataType.Float, ["actions"]);
        g.Initializer("axis_1", [1L], [1]);
        g.Node("ai.onnx.ml", "LabelEncoder", [HashesInput], ["weights"],
            ("keys_int64s", keys), ("values_floats", values), ("default_float", 0f));
        g.Node("Mul", ["weights", ValuesInput], ["terms"]);
        g.Node("ReduceSum", ["terms", "axis_1"], [ScoresOutput], ("keepdims", 0L));

        var model = g.ToModel("recommender-personalizer", 17, ("ai.onnx.ml", 2));
        model.MetadataProps.Add(new StringStringEntryProto { Key = "events_learned", Value = bandit.Events.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "weights", Value = weights.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return model.ToByteArray();
    }
}
