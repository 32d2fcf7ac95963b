using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Recommender.Serving;
using Recommender.TestSupport;

namespace Recommender.Functions.Tests;

/// <summary>
/// Personalizer's official examples (<c>../shared/personalizer-api</c>), each sent to the API as the spec's clients
/// send it: the status must be the example's, and the body must match the operation's response schema in the spec
/// (required properties present, no property the schema lacks, each of the schema's type). Stable bodies are validated
/// against stable v1.1, which holds every v1.0 operation on the same base path; the multi-slot ones against
/// v1.1-preview.1.
/// </summary>
public sealed class PersonalizerContractTests
{
    private static readonly string SpecRoot = SharedData.Beside("personalizer-api");
    private static readonly JsonNode Spec = LoadSpec("stable/v1.1");
    private static readonly JsonNode PreviewSpec = LoadSpec("preview/v1.1-preview.1");

    private static JsonNode LoadSpec(string version) => JsonNode.Parse(File.ReadAllText(Path.Combine(SpecRoot, version, "Personalizer.json")))!;

    /// <summary>The operations built so far, by the example's file name: the method and path of each in the spec.</summary>
    private static readonly Dictionary<string, (string Method, string Path)> Operations = new()
    {
        ["Rank"] = ("post", "/rank"),
        ["Events_Reward"] = ("post", "/events/{eventId}/reward"),
        ["Events_Activate"] = ("post", "/events/{eventId}/activate"),
        ["ServiceConfiguration_Get"] = ("get", "/configurations/service"),
        ["ServiceConfiguration_Update"] = ("put", "/configurations/service"),
        ["Policy_Get"] = ("get", "/configurations/policy"),
        ["Policy_Update"] = ("put", "/configurations/policy"),
        ["Policy_Delete"] = ("delete", "/configurations/policy"),
        ["Model_Get"] = ("get", "/model"),
        ["Model_Reset"] = ("delete", "/model"),
        ["Model_GetProperties"] = ("get", "/model/properties"),
        ["Log_GetProperties"] = ("get", "/logs/properties"),
        ["Log_Delete"] = ("delete", "/logs"),
        ["Evaluations_Create"] = ("post", "/evaluations"),
        ["Evaluations_Get"] = ("get", "/evaluations/{evaluationId}"),
        ["Evaluations_List"] = ("get", "/evaluations"),
        ["Evaluations_Delete"] = ("delete", "/evaluations/{evaluationId}"),
        ["LearningMetrics_Get"] = ("get", "/metrics/learning"),
        ["MultiSlot_Rank"] = ("post", "/multislot/rank"),
        ["MultiSlotEvents_Reward"] = ("post", "/multislot/events/{eventId}/reward"),
        ["MultiSlotEvents_Activate"] = ("post", "/multislot/events/{eventId}/activate"),
    };

    public static TheoryData<string> Examples()
    {
        var data = new TheoryData<string>();
        foreach (var version in new[] { "stable/v1.0", "stable/v1.1", "preview/v1.1-preview.1" })
        {
            foreach (var file in Directory.GetFiles(Path.Combine(SpecRoot, version, "examples")).Order(StringComparer.Ordinal))
            {
                if (Operations.ContainsKey(Path.GetFileNameWithoutExtension(file)))
                    data.Add(Path.Combine(version, Path.GetFileName(file)));
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public async Task Every_example_of_the_spec_answers_with_its_status_and_a_body_its_schema_accepts(string example)
    {
        var (spec, _, method, path, body, eventId, parameters, expected) = await SpecExample.LoadAsync(example);

        var serving = await ServingFixture.CreateAsync(await Azurite.CreateServicesAsync());
        var api = new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(null));
        if (eventId is not null && path.StartsWith("/multislot", StringComparison.Ordinal))
            await api.MultiSlotRank(Request("POST", $$"""{"actions": [{"id": "a"}, {"id": "b"}], "slots": [{"id": "Heroposition", "baselineAction": "a"}, {"id": "SideBar", "baselineAction": "b"}], "eventId": "{{eventId}}"}"""), default);
        else if (eventId is not null)
            await api.PersonalizerRank(Request("POST", $$"""{"actions": [{"id": "a"}, {"id": "b"}], "eventId": "{{eventId}}"}"""), default);
        var evaluationId = (string?)parameters["evaluationId"];
        if (path == "/evaluations/{evaluationId}" && method == "get")
        {
            // The example's id names an evaluation that exists: make one.
            var created = await ExecuteAsync(await api.CreateEvaluation(Request("POST", """{"name": "e", "startTime": "2018-12-19T00:00:00Z", "endTime": "2019-01-19T00:00:00Z", "policies": []}"""), default));
            evaluationId = (string)JsonNode.Parse(created.Content)!["id"]!;
        }
        if (path == "/metrics/learning")
        {
            // One rewarded event, so the answer has a window to validate (the reward is final at once: rewardAggregation earliest).
            await api.PersonalizerRank(Request("POST", """{"actions": [{"id": "a"}, {"id": "b"}], "eventId": "m1"}"""), default);
            await api.PersonalizerReward(Request("POST", """{"value": 1}"""), "m1", default);
        }
        // The metrics example's query values are placeholders ("id"), as its Endpoint is: the query is left out.
        var result = (method, path) switch
        {
            ("get", "/metrics/learning") => await api.GetLearningMetrics(Request("GET"), default),
            ("post", "/multislot/rank") => await api.MultiSlotRank(Request("POST", body), default),
            ("post", "/multislot/events/{eventId}/reward") => await api.MultiSlotReward(Request("POST", body), eventId!, default),
            ("post", "/multislot/events/{eventId}/activate") => await api.MultiSlotActivate(Request("POST", body), eventId!, default),
            ("post", "/evaluations") => await api.CreateEvaluation(Request("POST", body), default),
            ("get", "/evaluations/{evaluationId}") => await api.GetEvaluation(Request("GET"), evaluationId!, default),
            ("get", "/evaluations") => await api.ListEvaluations(Request("GET"), default),
            ("delete", "/evaluations/{evaluationId}") => await api.DeleteEvaluation(Request("DELETE"), evaluationId!, default),
            ("post", "/rank") => await api.PersonalizerRank(Request("POST", body), default),
            ("post", "/events/{eventId}/reward") => await api.PersonalizerReward(Request("POST", body), eventId!, default),
            ("post", "/events/{eventId}/activate") => await api.PersonalizerActivate(Request("POST", body), eventId!, default),
            ("get", "/configurations/service") => await api.GetServiceConfiguration(Request("GET"), default),
            ("put", "/configurations/service") => await api.UpdateServiceConfiguration(Request("PUT", body), default),
            ("get", "/configurations/policy") => await api.GetPolicy(Request("GET"), default),
            ("put", "/configurations/policy") => await api.UpdatePolicy(Request("PUT", body), default),
            ("delete", "/configurations/policy") => await api.ResetPolicy(Request("DELETE"), default),
            ("get", "/model") => await api.GetModel(Request("GET"), default),
            ("delete", "/model") => await api.ResetModel(Request("DELETE"), default),
            ("get", "/model/properties") => await api.GetModelProperties(Request("GET"), default),
            ("get", "/logs/properties") => await api.GetLogProperties(Request("GET"), default),
            ("delete", "/logs") => await api.DeleteLogs(Request("DELETE"), default),
            _ => throw new InvalidOperationException($"no dispatch for {method} {path}"),
        };
        var (status, content, contentType) = await ExecuteAsync(result);

        AssertAsTheSpecSays(spec, method, path, expected, body, status, content, contentType);
    }

    /// <summary>
    /// The same examples over HTTP to the local host in process (its own route table, middleware and composition root,
    /// over Azurite in a storage namespace of its own), as a Personalizer client sends them: the base path of the
    /// example's version, the key header, the example's body.
    /// </summary>
    [Theory]
    [MemberData(nameof(Examples))]
    public async Task Every_example_of_the_spec_answers_over_http_from_the_local_host_as_the_spec_says(string example)
    {
        var (spec, basePath, method, path, body, eventId, parameters, expected) = await SpecExample.LoadAsync(example);

        await using var host = new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactory<Recommender.LocalHost.LocalHostAssembly>()
            .WithWebHostBuilder(web => web.UseSetting("Storage:Namespace", "pc" + Guid.NewGuid().ToString("N")[..8]));
        using var http = host.CreateClient();
        async Task<(int Status, string Content, string? ContentType)> SendAsync(string verb, string url, string content = "")
        {
            using var request = new HttpRequestMessage(new HttpMethod(verb.ToUpperInvariant()), url);
            if (content.Length > 0)
                request.Content = new StringContent(content, Encoding.UTF8, "application/json");
            request.Headers.Add(SubscriptionKeys.Header, "{API key}");
            using var response = await http.SendAsync(request);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response.Content.Headers.ContentType?.MediaType);
        }
        if (eventId is not null && path.StartsWith("/multislot", StringComparison.Ordinal))
            await SendAsync("post", $"{basePath}/multislot/rank", $$"""{"actions": [{"id": "a"}, {"id": "b"}], "slots": [{"id": "Heroposition", "baselineAction": "a"}, {"id": "SideBar", "baselineAction": "b"}], "eventId": "{{eventId}}"}""");
        else if (eventId is not null)
            await SendAsync("post", $"{basePath}/rank", $$"""{"actions": [{"id": "a"}, {"id": "b"}], "eventId": "{{eventId}}"}""");
        if (path == "/metrics/learning")
        {
            await SendAsync("post", $"{basePath}/rank", """{"actions": [{"id": "a"}, {"id": "b"}], "eventId": "m1"}""");
            await SendAsync("post", $"{basePath}/events/m1/reward", """{"value": 1}""");
        }
        var evaluationId = (string?)parameters["evaluationId"];
        if (path == "/evaluations/{evaluationId}" && method == "get")
        {
            var (_, created, _) = await SendAsync("post", $"{basePath}/evaluations", """{"name": "e", "startTime": "2018-12-19T00:00:00Z", "endTime": "2019-01-19T00:00:00Z", "policies": []}""");
            evaluationId = (string)JsonNode.Parse(created)!["id"]!;
        }
        var url = basePath + path.Replace("{eventId}", Uri.EscapeDataString(eventId ?? ""), StringComparison.Ordinal).Replace("{evaluationId}", evaluationId, StringComparison.Ordinal);

        var (status, content, contentType) = await SendAsync(method, url, body);

        AssertAsTheSpecSays(spec, method, path, expected, body, status, content, contentType);
    }

    /// <summary>One example file as a client sends it: its spec and base path, the operation, the body, the event id, its parameters and the status it expects.</summary>
    private sealed record SpecExample(JsonNode Spec, string BasePath, string Method, string Path, string Body, string? EventId, JsonObject Parameters, int Expected)
    {
        public static async Task<SpecExample> LoadAsync(string example)
        {
            var (version, file) = (System.IO.Path.GetDirectoryName(example)!, System.IO.Path.GetFileName(example));
            var document = JsonNode.Parse(await File.ReadAllTextAsync(System.IO.Path.Combine(SpecRoot, version, "examples", file)))!;
            var preview = version.StartsWith("preview", StringComparison.Ordinal);
            var (method, path) = Operations[System.IO.Path.GetFileNameWithoutExtension(file)];
            var parameters = document["parameters"]!.AsObject();
            var body = parameters.Where(p => p.Key is "rankRequest" or "reward" or "config" or "policy" or "evaluation" or "body").Select(p => p.Value!.ToJsonString()).SingleOrDefault() ?? "";
            return new SpecExample(preview ? PreviewSpec : PersonalizerContractTests.Spec, preview ? "/personalizer/v1.1-preview.1" : "/personalizer/v1.0", method, path, body,
                (string?)parameters["eventId"], parameters, int.Parse(document["responses"]!.AsObject().Single().Key));
        }
    }

    /// <summary>The example's status, and a body the operation's response schema accepts (what PUT set comes back).</summary>
    private static void AssertAsTheSpecSays(JsonNode spec, string method, string path, int expected, string body, int status, string content, string? contentType)
    {
        Assert.True(expected == status, $"{method} {path}: {status} {content}");
        var schema = spec["paths"]![path]![method]!["responses"]![expected.ToString(System.Globalization.CultureInfo.InvariantCulture)]!["schema"];
        if (schema is null)
        {
            Assert.Equal("", content);
            return;
        }
        if ((string?)Resolve(schema, spec)["type"] == "file")
        {
            Assert.Equal("application/octet-stream", contentType);
            return;
        }
        var problems = new List<string>();
        Validate(JsonNode.Parse(content), schema, spec, "$", problems);
        Assert.True(problems.Count == 0, string.Join("; ", problems));
        // What PUT set comes back (lastConfigurationEditDate is the service's to set).
        if (method == "put" && path.StartsWith("/configurations", StringComparison.Ordinal))
        {
            var sent = JsonNode.Parse(body)!.AsObject();
            var answered = JsonNode.Parse(content)!.AsObject();
            foreach (var (name, value) in sent.Where(p => p.Key != "lastConfigurationEditDate"))
                Assert.True(Same(value, answered[name]), $"{name}: sent {value?.ToJsonString()}, answered {answered[name]?.ToJsonString()}");
        }
    }

    [Fact]
    public async Task The_spec_rank_example_keeps_the_excluded_action_in_its_place_with_probability_zero()
    {
        var document = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(SpecRoot, "stable", "v1.0", "examples", "Rank.json")))!;
        var serving = await ServingFixture.CreateAsync(await Azurite.CreateServicesAsync());
        var api = new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(null));

        var (status, content, _) = await ExecuteAsync(await api.PersonalizerRank(Request("POST", document["parameters"]!["rankRequest"]!.ToJsonString()), default));
        var ranking = JsonNode.Parse(content)!["ranking"]!.AsArray();

        Assert.Equal(201, status);
        Assert.Equal(("SportsArticle", 0.0), ((string)ranking[1]!["id"]!, (double)ranking[1]!["probability"]!));
        Assert.Equal(1.0, ranking.Sum(r => (double)r!["probability"]!), 9);
        Assert.Equal((string)ranking[0]!["id"]!, (string)JsonNode.Parse(content)!["rewardActionId"]!);
    }

    [Fact]
    public async Task Log_properties_span_the_ranks_logged_and_delete_logs_empties_the_log_for_the_learner_too()
    {
        var clock = new ManualClock(TestEvents.Start);
        var serving = await ServingFixture.CreateAsync(await Azurite.CreateServicesAsync(), time: clock);
        var api = new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(null));
        await api.PersonalizerRank(Request("POST", """{"actions": [{"id": "a"}, {"id": "b"}], "eventId": "e1"}"""), default);
        clock.Advance(TimeSpan.FromHours(3));
        await api.PersonalizerRank(Request("POST", """{"actions": [{"id": "a"}, {"id": "b"}], "eventId": "e2"}"""), default);

        var (_, before, _) = await ExecuteAsync(await api.GetLogProperties(Request("GET"), default));
        var (deleted, _, _) = await ExecuteAsync(await api.DeleteLogs(Request("DELETE"), default));
        var (_, after, _) = await ExecuteAsync(await api.GetLogProperties(Request("GET"), default));
        var reward = await api.PersonalizerReward(Request("POST", """{"value": 1}"""), "e1", default);

        var range = JsonNode.Parse(before)!["dateRange"]!;
        Assert.Equal((TestEvents.Start, TestEvents.Start.AddHours(3)), (DateTimeOffset.Parse((string)range["from"]!), DateTimeOffset.Parse((string)range["to"]!)));
        Assert.Equal(204, deleted);
        Assert.Null(JsonNode.Parse(after)!["dateRange"]!["from"]);
        Assert.Equal(404, ((ObjectResult)reward).StatusCode); // the rank is gone: nothing left to reward or learn
    }

    [Fact]
    public async Task A_rank_with_every_action_excluded_answers_with_no_reward_action_and_teaches_nothing()
    {
        var serving = await ServingFixture.CreateAsync(await Azurite.CreateServicesAsync());
        var api = new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(null));

        var (status, content, _) = await ExecuteAsync(await api.PersonalizerRank(Request("POST", """{"actions": [{"id": "a"}, {"id": "b"}], "excludedActions": ["a", "b"], "eventId": "none"}"""), default));
        var update = await serving.PersonalizerLearner.UpdateAsync(force: true);

        Assert.Equal(201, status);
        Assert.Null(JsonNode.Parse(content)!["rewardActionId"]);
        Assert.All(JsonNode.Parse(content)!["ranking"]!.AsArray(), r => Assert.Equal(0.0, (double)r!["probability"]!));
        Assert.Equal(0, update.Learned);
    }

    [Theory]
    [InlineData(null, null, 201)] // development mode: no key configured, none needed
    [InlineData(null, "anything", 201)]
    [InlineData("key-one;key-two", "key-two", 201)]
    [InlineData("key-one;key-two", "key-three", 401)]
    [InlineData("key-one;key-two", null, 401)]
    [InlineData("@Microsoft.KeyVault(VaultName=kv;SecretName=personalizer-subscription-keys)", "@Microsoft.KeyVault(VaultName=kv;SecretName=personalizer-subscription-keys)", 401)] // unresolved: closed
    public async Task The_subscription_key_header_decides_who_may_call_the_personalizer_paths(string? configured, string? presented, int status)
    {
        var serving = await ServingFixture.CreateAsync(await Azurite.CreateServicesAsync());
        var api = new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(configured));
        var request = Request("POST", """{"actions": [{"id": "a"}]}""");
        if (presented is not null)
            request.Headers[SubscriptionKeys.Header] = presented;

        var (actual, content, _) = await ExecuteAsync(await api.PersonalizerRank(request, default));

        Assert.Equal(status, actual);
        if (status == 401)
            Assert.Equal("Unauthorized", (string?)JsonNode.Parse(content)!["error"]!["code"]);
    }

    [Theory]
    [InlineData("rank", """{"actions": []}""", 400, "BadRequest")]
    [InlineData("rank", """not json""", 400, "BadRequest")]
    [InlineData("reward", """{"value": 1}""", 404, "ResourceNotFound")]
    [InlineData("reward", """{"value": 1.5}""", 400, "BadRequest")]
    public async Task Errors_on_personalizer_paths_have_the_spec_error_shape(string operation, string body, int status, string code)
    {
        var serving = await ServingFixture.CreateAsync(await Azurite.CreateServicesAsync());
        var api = new PersonalizerApi(serving.Personalizer, serving.PersonalizerLog, serving.PersonalizerEvaluations, serving.PersonalizerLearningMetrics, SubscriptionKeys.From(null));
        if (body.Contains("1.5", StringComparison.Ordinal))
            await api.PersonalizerRank(Request("POST", """{"actions": [{"id": "a"}], "eventId": "never-rewarded"}"""), default);

        var result = operation == "rank"
            ? await api.PersonalizerRank(Request("POST", body), default)
            : await api.PersonalizerReward(Request("POST", body), body.Contains("1.5", StringComparison.Ordinal) ? "never-rewarded" : "never-ranked", default);
        var (actual, content, _) = await ExecuteAsync(result);

        Assert.Equal(status, actual);
        var error = JsonNode.Parse(content)!;
        var problems = new List<string>();
        Validate(error, JsonNode.Parse("""{"$ref": "#/definitions/ErrorResponse"}""")!, Spec, "$", problems);
        Assert.Empty(problems);
        Assert.Equal(code, (string?)error["error"]!["code"]);
    }

    private static HttpRequest Request(string method, string body = "")
    {
        var context = new DefaultHttpContext { RequestServices = Mvc };
        context.Request.Method = method;
        context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body));
        context.Request.ContentType = "application/json";
        context.Response.Body = new MemoryStream();
        return context.Request;
    }

    private static readonly IServiceProvider Mvc = new ServiceCollection().AddLogging().AddMvcCore().Services.BuildServiceProvider();

    /// <summary>Runs the result as the Functions host does (MVC's executors), and reads back what went on the wire.</summary>
    private static async Task<(int Status, string Content, string? ContentType)> ExecuteAsync(IActionResult result)
    {
        var http = new DefaultHttpContext { RequestServices = Mvc };
        http.Response.Body = new MemoryStream();
        await result.ExecuteResultAsync(new ActionContext(http, new RouteData(), new ActionDescriptor()));
        http.Response.Body.Position = 0;
        return (http.Response.StatusCode, await new StreamReader(http.Response.Body).ReadToEndAsync(), http.Response.ContentType);
    }

    private static bool Same(JsonNode? a, JsonNode? b) =>
        a is JsonValue x && b is JsonValue y && x.GetValueKind() == JsonValueKind.Number && y.GetValueKind() == JsonValueKind.Number
            ? x.GetValue<double>() == y.GetValue<double>()
            : JsonNode.DeepEquals(a, b);

    private static JsonNode Resolve(JsonNode schema, JsonNode spec)
    {
        while (schema["$ref"] is { } reference)
            schema = spec["definitions"]![((string)reference!).Split('/')[^1]]!;
        if (schema["allOf"] is JsonArray all && all.Count == 1)
            return Resolve(all[0]!, spec);
        return schema;
    }

    private static void Validate(JsonNode? value, JsonNode schema, JsonNode spec, string at, List<string> problems)
    {
        schema = Resolve(schema, spec);
        var type = (string?)schema["type"] ?? (schema["properties"] is not null ? "object" : null);
        switch (type)
        {
            case "object" when value is JsonObject o:
                foreach (var required in schema["required"]?.AsArray().Select(r => (string)r!) ?? [])
                {
                    if (!o.ContainsKey(required))
                        problems.Add($"{at}.{required} is required");
                }
                var properties = schema["properties"]?.AsObject();
                foreach (var (name, child) in o)
                {
                    if (properties?[name] is { } propertySchema)
                        Validate(child, propertySchema, spec, $"{at}.{name}", problems);
                    else if (properties is not null)
                        problems.Add($"{at}.{name} is not in the schema");
                }
                break;
            case "array" when value is JsonArray a:
                for (var i = 0; i < a.Count; i++)
                    Validate(a[i], schema["items"]!, spec, $"{at}[{i}]", problems);
                break;
            case "string" when value is JsonValue v && v.GetValueKind() == JsonValueKind.String:
            case "number" when value is JsonValue n && n.GetValueKind() == JsonValueKind.Number:
            case "integer" when value is JsonValue i && i.GetValueKind() == JsonValueKind.Number:
            case "boolean" when value is JsonValue b && b.GetValueKind() is JsonValueKind.True or JsonValueKind.False:
            case null:
                break;
            default:
                problems.Add($"{at} is not of type {type}: {value?.ToJsonString() ?? "null"}");
                break;
        }
    }
}
