using Google.Protobuf;
using Onnx;

namespace Recommender.ModelContract;

/// <summary>
/// A small builder over the ONNX protobuf messages: the exporters of the sequence policy
/// (<c>PolicyExporter</c> in the training job) and of Personalizer's bandit (<see cref="BanditOnnxExport"/>) write
/// their graphs with it, so both produce models the same way.
/// </summary>
public sealed class OnnxGraph
{
    private readonly GraphProto _graph = new() { Name = "main" };

    public void Input(string name, TensorProto.Types.DataType type, object[] shape) => _graph.Input.Add(Value(name, type, shape));

    public void Output(string name, TensorProto.Types.DataType type, object[] shape) => _graph.Output.Add(Value(name, type, shape));

    public void Initializer(string name, float[] data, long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.AddRange(dims);
        tensor.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
        _graph.Initializer.Add(tensor);
    }

    public void Initializer(string name, sbyte[] data, long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int8 };
        tensor.Dims.AddRange(dims);
        tensor.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
        _graph.Initializer.Add(tensor);
    }

    public void Initializer(string name, long[] data, long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.AddRange(dims);
        tensor.Int64Data.AddRange(data);
        _graph.Initializer.Add(tensor);
    }

    /// <summary>A node of the default (<c>ai.onnx</c>) domain.</summary>
    public void Node(string op, string[] inputs, string[] outputs, params (string Name, object Value)[] attributes) =>
        Node("", op, inputs, outputs, attributes);

    /// <summary>A node of <paramref name="domain"/> (<c>ai.onnx.ml</c> for the classic ML operators).</summary>
    public void Node(string domain, string op, string[] inputs, string[] outputs, params (string Name, object Value)[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = outputs[0] + "_" + op, Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        foreach (var (name, value) in attributes)
        {
            node.Attribute.Add(value switch
            {
                long i => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = i },
                float f => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = f },
                string text => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(text) },
                long[] ints => Ints(name, ints),
                float[] floats => Floats(name, floats),
                _ => throw new ArgumentException($"attribute {name} of type {value.GetType()}"),
            });
        }
        _graph.Node.Add(node);
    }

    /// <summary>The model: the default domain at <paramref name="opset"/>, and each of <paramref name="domains"/> its nodes use.</summary>
    public ModelProto ToModel(string producer, int opset, params (string Domain, int Version)[] domains)
    {
        var model = new ModelProto { IrVersion = 8, ProducerName = producer, Graph = _graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        foreach (var (domain, version) in domains)
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        return model;
    }

    /// <summary>
    /// The part of <paramref name="model"/> that computes <paramref name="outputs"/>: the nodes they depend on, the
    /// initializers those read, every input (callers feed one set of inputs to every part). ONNX Runtime runs every node of
    /// a graph whatever outputs a call asks for, so a caller that wants only some outputs runs the part that makes them.
    /// Nodes with subgraphs (If, Loop) are not looked into: the graphs written here have none.
    /// </summary>
    public static ModelProto Part(ModelProto model, IReadOnlyCollection<string> outputs)
    {
        var missing = outputs.Where(o => model.Graph.Output.All(g => g.Name != o)).ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"the graph has no output {string.Join(", ", missing)}", nameof(outputs));
        var needed = new HashSet<string>(outputs);
        var nodes = new List<NodeProto>();
        for (var n = model.Graph.Node.Count - 1; n >= 0; n--) // nodes are in topological order: consumers after producers
        {
            var node = model.Graph.Node[n];
            if (!node.Output.Any(needed.Contains))
                continue;
            nodes.Add(node);
            needed.UnionWith(node.Input.Where(i => i.Length > 0));
        }
        nodes.Reverse();
        var graph = new GraphProto { Name = model.Graph.Name };
        graph.Input.AddRange(model.Graph.Input);
        graph.Output.AddRange(model.Graph.Output.Where(o => outputs.Contains(o.Name)));
        graph.Initializer.AddRange(model.Graph.Initializer.Where(i => needed.Contains(i.Name)));
        graph.Node.AddRange(nodes);
        var part = new ModelProto { IrVersion = model.IrVersion, ProducerName = model.ProducerName, Graph = graph };
        part.OpsetImport.AddRange(model.OpsetImport);
        return part;
    }

    private static AttributeProto Ints(string name, long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private static AttributeProto Floats(string name, float[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Floats };
        attribute.Floats.AddRange(values);
        return attribute;
    }

    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, object[] shape)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new TensorShapeProto() };
        foreach (var dim in shape)
        {
            tensorType.Shape.Dim.Add(dim switch
            {
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                int n => new TensorShapeProto.Types.Dimension { DimValue = n },
                long n => new TensorShapeProto.Types.Dimension { DimValue = n },
                _ => throw new ArgumentException($"dimension {dim}"),
            });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }
}
