using Microsoft.Azure.Functions.Worker;

namespace Recommender.Functions.Tests;

/// <summary>Just enough of a FunctionContext to carry trigger metadata.</summary>
internal sealed class FakeFunctionContext(IReadOnlyDictionary<string, object?> bindingData) : FunctionContext
{
    public override string InvocationId => "test";
    public override string FunctionId => "test";
    public override TraceContext TraceContext => null!;
    public override BindingContext BindingContext { get; } = new FakeBindingContext(bindingData);
    public override RetryContext RetryContext => null!;
    public override IServiceProvider InstanceServices { get; set; } = null!;
    public override FunctionDefinition FunctionDefinition => null!;
    public override IDictionary<object, object> Items { get; set; } = new Dictionary<object, object>();
    public override IInvocationFeatures Features => null!;

    private sealed class FakeBindingContext(IReadOnlyDictionary<string, object?> data) : BindingContext
    {
        public override IReadOnlyDictionary<string, object?> BindingData => data;
    }
}
