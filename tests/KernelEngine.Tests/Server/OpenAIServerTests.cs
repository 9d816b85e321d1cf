using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using KernelEngine.Chat;
using KernelEngine.Decoding;
using KernelEngine.Server;
using KernelEngine.Tests.Cli;
using Microsoft.Extensions.AI;
using NUnit.Framework;
using OpenAI;
using OpenAI.Chat;

namespace KernelEngine.Tests.Server;

/// <summary>
/// The OpenAI-compatible server on loopback, driven by the official OpenAI .NET client and Microsoft.Extensions.AI's
/// IChatClient over it (independent clients of the protocol), against what the library and <c>ke generate</c> produce
/// for the same greedy requests; errors, disconnects and shutdown checked on the wire.
/// </summary>
[NonParallelizable]
public sealed class OpenAIServerTests
{
    private Model _model = null!;
    private OpenAIServer _server = null!;
    private HttpClient _http = null!;
    private const string Key = "test-key";

    [OneTimeSetUp]
    public async Task Start()
    {
        _model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 256 });
        _server = OpenAIServer.Build(_model, new ServerOptions { Port = 0, ApiKey = Key, MaxBatch = 8 });
        await _server.StartAsync();
        _http = new HttpClient { BaseAddress = new Uri(_server.Address) };
        _http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Key);
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        _model.Dispose();
    }

    private OpenAIClient Client() => new(new ApiKeyCredential(Key), new OpenAIClientOptions { Endpoint = new Uri(_server.Address + "/v1") });

    private static readonly GenerationSettings Greedy20 = new() { MaxTokens = 20, Sampling = SamplingSettings.Greedy };

    [Test]
    public async Task OpenAIClient_ChatWholeAndStreamed_EqualsTheLibrarysGreedyChat()
    {
        string expected;
        using (var chat = _model.CreateChat()) expected = chat.Send("Tell me a story.", Greedy20).Text;
        Assert.That(expected, Is.Not.Empty);
        var client = Client().GetChatClient(_server.ModelId);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 20 };
        var whole = (await client.CompleteChatAsync([new UserChatMessage("Tell me a story.")], options)).Value;
        Assert.That(whole.Content[0].Text, Is.EqualTo(expected));
        Assert.That(whole.FinishReason, Is.EqualTo(OpenAI.Chat.ChatFinishReason.Length));
        Assert.That(whole.Usage.OutputTokenCount, Is.EqualTo(20));
        var streamed = new StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        int updates = 0;
        await foreach (var u in client.CompleteChatStreamingAsync([new UserChatMessage("Tell me a story.")], options))
        {
            updates++;
            foreach (var part in u.ContentUpdate) streamed.Append(part.Text);
            finish ??= u.FinishReason;
        }
        Assert.That(streamed.ToString(), Is.EqualTo(expected));
        Assert.That(updates, Is.GreaterThan(5), "streamed piece by piece");
        Assert.That(finish, Is.EqualTo(OpenAI.Chat.ChatFinishReason.Length));
    }

    [Test]
    public async Task ExtensionsAIChatClient_WholeAndStreamed_EqualsTheLibrarysGreedyChat()
    {
        string expected;
        using (var chat = _model.CreateChat()) expected = chat.Send("Hello!", Greedy20).Text;
        IChatClient client = Client().GetChatClient(_server.ModelId).AsIChatClient();
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 20 };
        var response = await client.GetResponseAsync("Hello!", options);
        Assert.That(response.Text, Is.EqualTo(expected));
        var streamed = new StringBuilder();
        await foreach (var u in client.GetStreamingResponseAsync("Hello!", options)) streamed.Append(u.Text);
        Assert.That(streamed.ToString(), Is.EqualTo(expected));
    }

    [Test]
    public async Task Completions_WholeAndStreamed_EqualKeGenerate()
    {
        var cli = CliRunner.Run("generate", "--model", SharedData.Stories, "--prompt", "Once upon a time", "--temperature", "0", "-n", "30", "--json");
        Assert.That(cli.ExitCode, Is.EqualTo(0), cli.Stderr);
        string expected = JsonDocument.Parse(cli.Stdout).RootElement.GetProperty("text").GetString()!;
        var body = new { model = _server.ModelId, prompt = "Once upon a time", max_tokens = 30, temperature = 0 };
        using var whole = await _http.PostAsJsonAsync("/v1/completions", body);
        Assert.That(whole.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var doc = JsonDocument.Parse(await whole.Content.ReadAsStringAsync()).RootElement;
        Assert.That(doc.GetProperty("choices")[0].GetProperty("text").GetString(), Is.EqualTo(expected));
        Assert.That(doc.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.EqualTo(30));
        var (events, done) = await ReadStream("/v1/completions", new { prompt = "Once upon a time", max_tokens = 30, temperature = 0, stream = true });
        Assert.That(done, Is.True, "ends in data: [DONE]");
        Assert.That(string.Concat(events.Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString())), Is.EqualTo(expected));
        Assert.That(events[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString(), Is.EqualTo("length"));
    }

    [Test]
    public async Task EightConcurrentGreedyRequests_GiveTheSerialAnswers()
    {
        string[] prompts = ["Once upon a time", "Lily", "Tom went to", "The sun", "A big dog", "One day", "Sam and Mia", "The little bird"];
        async Task<string> Ask(string p)
        {
            using var r = await _http.PostAsJsonAsync("/v1/completions", new { prompt = p, max_tokens = 40, temperature = 0 });
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
        }
        var serial = new List<string>();
        foreach (var p in prompts) serial.Add(await Ask(p));
        Assert.That(serial.Distinct().Count(), Is.GreaterThan(4));
        var concurrent = await Task.WhenAll(prompts.Select(Ask));
        Assert.That(concurrent, Is.EqualTo(serial));
    }

    [Test]
    public async Task BadRequests_GetTheRight4xx_AndTheServerKeepsServing()
    {
        async Task<(HttpStatusCode, JsonElement)> Post(string path, string json, string? key = Key)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            using var anonymous = new HttpClient { BaseAddress = _http.BaseAddress };
            if (key != null) req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            using var r = await anonymous.SendAsync(req);
            return (r.StatusCode, JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone());
        }
        static string Param(JsonElement e) => e.GetProperty("error").TryGetProperty("param", out var p) ? p.GetString()! : "";
        static string Message(JsonElement e) => e.GetProperty("error").GetProperty("message").GetString()!;

        var (s1, e1) = await Post("/v1/chat/completions", "{\"messages\": [");
        Assert.That(s1, Is.EqualTo(HttpStatusCode.BadRequest)); Assert.That(Message(e1), Does.Contain("JSON"));
        var (s2, e2) = await Post("/v1/completions", "{\"prompt\": \"Hi\", \"max_tokens\": 1000000000}");
        Assert.That((s2, Param(e2)), Is.EqualTo((HttpStatusCode.BadRequest, "max_tokens"))); Assert.That(Message(e2), Does.Contain("maximum context length is 256"));
        var (s3, e3) = await Post("/v1/chat/completions", "{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}");
        Assert.That((s3, Param(e3)), Is.EqualTo((HttpStatusCode.NotFound, "model"))); Assert.That(e3.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("model_not_found"));
        string longPrompt = JsonSerializer.Serialize(string.Join(' ', Enumerable.Repeat("Once upon a time there was a dog.", 60)));
        var (s4, e4) = await Post("/v1/completions", $"{{\"prompt\": {longPrompt}}}");
        Assert.That((s4, Param(e4)), Is.EqualTo((HttpStatusCode.BadRequest, "prompt"))); Assert.That(e4.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("context_length_exceeded"));
        var (s5, _) = await Post("/v1/completions", "{\"prompt\": \"Hi\"}", key: "wrong");
        Assert.That(s5, Is.EqualTo(HttpStatusCode.Unauthorized));
        var (s6, _) = await Post("/v1/completions", "{\"prompt\": \"Hi\"}", key: null);
        Assert.That(s6, Is.EqualTo(HttpStatusCode.Unauthorized));
        var (s7, e7) = await Post("/v1/completions", "{\"prompt\": \"Hi\", \"max_tokens\": \"many\"}");
        Assert.That((s7, Param(e7)), Is.EqualTo((HttpStatusCode.BadRequest, "max_tokens")));
        var (s8, e8) = await Post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"temperature\": 7}");
        Assert.That((s8, Param(e8)), Is.EqualTo((HttpStatusCode.BadRequest, "temperature")));
        var (s9, e9) = await Post("/v1/chat/completions", "{\"messages\": []}");
        Assert.That((s9, Param(e9)), Is.EqualTo((HttpStatusCode.BadRequest, "messages")));
        foreach (var bad in new[] { "{\"messages\": [null]}", "{\"messages\": [{\"role\": \"robot\", \"content\": \"Hi\"}]}",
                     "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"stop\": [1]}" })
        {
            var (sb, eb) = await Post("/v1/chat/completions", bad);
            Assert.That(sb, Is.EqualTo(HttpStatusCode.BadRequest), bad + " -> " + eb);
        }
        var (s10, _) = await Post("/v1/completions", "{\"prompt\": [1, 999999]}");
        Assert.That(s10, Is.EqualTo(HttpStatusCode.BadRequest), "a token id outside the vocabulary");
        // still serving
        var (ok, body) = await Post("/v1/completions", "{\"prompt\": \"Hi\", \"max_tokens\": 3}");
        Assert.That(ok, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        using var models = await _http.GetAsync("/v1/models");
        Assert.That(JsonDocument.Parse(await models.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0].GetProperty("id").GetString(), Is.EqualTo(_server.ModelId));
    }

    /// <summary>On ILGPU's CPU accelerator (a simulator: tens of ms per token), so the stream is still running when the
    /// client leaves.</summary>
    /// <summary>Mutated request bodies (truncated, bytes flipped, values swapped for other JSON kinds): every answer is a
    /// 2xx or a 4xx with an error body, never a 5xx, and the server keeps serving.</summary>
    [Test]
    public async Task FuzzedBodies_NeverGiveA5xx()
    {
        string[] valid =
        [
            """{"model":"stories260K","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0.5,"stop":["."],"stream":false}""",
            """{"prompt":"Once","max_tokens":4,"top_p":0.9,"seed":3,"stream":true}""",
            """{"input":["a","b"],"encoding_format":"float"}""",
        ];
        string[] paths = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];
        string[] values = ["null", "true", "-1", "1e400", "\"\"", "[]", "{}", "[null]", "99999999999", "\"x\""];
        var rng = new Random(5);
        for (int i = 0; i < 150; i++)
        {
            int k = rng.Next(valid.Length);
            string body = valid[k];
            switch (rng.Next(3))
            {
                case 0: body = body[..rng.Next(body.Length)]; break;
                case 1: { var c = body.ToCharArray(); c[rng.Next(c.Length)] = (char)rng.Next(32, 127); body = new string(c); break; }
                default:
                {
                    var m = System.Text.RegularExpressions.Regex.Matches(body, @":(\d+(\.\d+)?|""[^""]*""|true|false|\[[^\]]*\])");
                    if (m.Count > 0) { var g = m[rng.Next(m.Count)]; body = body[..(g.Index + 1)] + values[rng.Next(values.Length)] + body[(g.Index + g.Length)..]; }
                    break;
                }
            }
            using var r = await _http.PostAsync(paths[k], new StringContent(body, Encoding.UTF8, "application/json"));
            string text = await r.Content.ReadAsStringAsync();
            Assert.That((int)r.StatusCode, Is.LessThan(500), $"{paths[k]} {body} -> {text}");
            if ((int)r.StatusCode >= 400) Assert.That(text, Does.Contain("\"error\""), body);
        }
        using var ok = await _http.PostAsJsonAsync("/v1/completions", new { prompt = "Hi", max_tokens = 2 });
        Assert.That(ok.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task ClientThatDisconnectsMidStream_FreesItsSequenceAndPages()
    {
        using var slow = Model.Load(SharedData.Stories, new ModelOptions { Device = "ilgpu-cpu", ContextLength = 256 });
        await using var server = OpenAIServer.Build(slow, new ServerOptions { Port = 0 });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Address) };
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { prompt = "Once upon a time", max_tokens = 240, temperature = 0, stream = true }),
        };
        using (var r = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await r.Content.ReadAsStreamAsync());
            int events = 0;
            while (events < 3 && await reader.ReadLineAsync() is string line) if (line.StartsWith("data: ")) events++;
            Assert.That(server.Stats.KvPagesInUse, Is.GreaterThan(0), "the sequence holds pages while it streams");
        }
        for (int i = 0; i < 3000 && (server.Stats.KvPagesInUse > 0 || server.Stats.Active > 0); i++) await Task.Delay(10);
        Assert.That((server.Stats.Active, server.Stats.KvPagesInUse), Is.EqualTo((0, 0)));
        Assert.That(server.Stats.Steps, Is.LessThan(120), "the sequence ended when its client left, not after its 240 tokens");
    }

    [Test]
    public async Task Embeddings_AndHealth_AndMetrics()
    {
        using var r = await _http.PostAsJsonAsync("/v1/embeddings", new { input = new[] { "a dog", "a cat" } });
        var data = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
        Assert.That(data.GetArrayLength(), Is.EqualTo(2));
        var expected = new KernelEngineEmbeddingGenerator(_model);
        var e0 = (await expected.GenerateAsync(["a dog"]))[0].Vector.ToArray();
        expected.Dispose();
        Assert.That(data[0].GetProperty("embedding").EnumerateArray().Select(x => x.GetSingle()).ToArray(), Is.EqualTo(e0));
        var embeddings = await Client().GetEmbeddingClient(_server.ModelId).GenerateEmbeddingAsync("a dog");   // base64 on the wire
        Assert.That(embeddings.Value.ToFloats().ToArray(), Is.EqualTo(e0));
        using var health = await _http.GetAsync("/health");
        Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        string metrics = await _http.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("ke_server_requests_total").And.Contain("ke_server_kv_pages_in_use").And.Contain("ke_server_kv_pages_shared").And.Contain("ke_generated_tokens_total"));
    }

    /// <summary>A bounded load test (ke loadtest, a separate process): mixed prompt lengths, 16 in flight, a tenth of the
    /// clients hanging up mid-stream; no 5xx, no connection error, nothing held afterwards.</summary>
    [Test]
    public async Task LoadTest_NoServerErrors_AndNothingHeldAfterwards()
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 512 });
        await using var server = OpenAIServer.Build(model, new ServerOptions { Port = 0, MaxBatch = 8, MaxQueue = 64 });
        await server.StartAsync();
        var r = CliRunner.Run("loadtest", "--url", server.Address, "--requests", "80", "--concurrency", "16", "--disconnect", "0.1", "--max-tokens", "24", "--json");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stdout + r.Stderr);
        var doc = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.That(doc.GetProperty("statuses").GetProperty("200").GetInt32(), Is.EqualTo(80));
        Assert.That(doc.GetProperty("disconnected").GetInt32(), Is.GreaterThan(0));
        Assert.That((doc.GetProperty("active_after").GetInt32(), doc.GetProperty("kv_pages_after").GetInt32()), Is.EqualTo((0, 0)));
        Assert.That(doc.GetProperty("completion_tokens").GetInt64(), Is.GreaterThan(80 * 24 / 2));
    }

    [Test]
    public async Task ResponseFormatJsonSchema_AnswersAreDocumentsOfTheSchema()
    {
        string schema = KernelEngine.Tests.Constraints.ConstrainedDecodingTests.Schemas[0];
        using var schemaDoc = JsonDocument.Parse(schema);
        var client = Client().GetChatClient(_server.ModelId);
        for (int seed = 0; seed < 3; seed++)
        {
            var options = new ChatCompletionOptions
            {
#pragma warning disable OPENAI001 // Seed is marked experimental in the client
                Temperature = 1f, Seed = seed, MaxOutputTokenCount = 200,
#pragma warning restore OPENAI001
                ResponseFormat = OpenAI.Chat.ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(schema)),
            };
            var answer = (await client.CompleteChatAsync([new UserChatMessage("Who are you?")], options)).Value.Content[0].Text;
            using var parsed = JsonDocument.Parse(answer);
            Assert.That(KernelEngine.Tests.Constraints.SchemaCheck.Error(parsed.RootElement, schemaDoc.RootElement, schemaDoc.RootElement), Is.Null, answer);
        }
        using var bad = await _http.PostAsJsonAsync("/v1/chat/completions", new
        {
            messages = new[] { new { role = "user", content = "Hi" } },
            response_format = new { type = "json_schema", json_schema = new { name = "x", schema = new { type = "string", pattern = "a+" } } },
        });
        Assert.That(bad.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await bad.Content.ReadAsStringAsync(), Does.Contain("pattern").And.Contain("response_format"));
    }

    /// <summary>On ILGPU's CPU accelerator (tens of ms per token), so the first request still runs when the second comes.</summary>
    [Test]
    public async Task FullQueue_Is429()
    {
        using var slow = Model.Load(SharedData.Stories, new ModelOptions { Device = "ilgpu-cpu", ContextLength = 256 });
        await using var server = OpenAIServer.Build(slow, new ServerOptions { Port = 0, MaxBatch = 1, MaxQueue = 0 });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Address) };
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(new { prompt = "Once", max_tokens = 200, stream = true }) };
        using var first = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        using var second = await http.PostAsJsonAsync("/v1/completions", new { prompt = "Once", max_tokens = 5 });
        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
        Assert.That(await second.Content.ReadAsStringAsync(), Does.Contain("queue_full"));
    }

    [Test]
    public async Task Stop_LetsTheRequestInFlightFinish()
    {
        var server = OpenAIServer.Build(_model, new ServerOptions { Port = 0 });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Address) };
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { prompt = "Once upon a time", max_tokens = 150, temperature = 0, stream = true, stop = Array.Empty<string>() }),
        };
        using var r = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        var stop = server.StopAsync();
        string all = await r.Content.ReadAsStringAsync();
        await stop;
        await server.DisposeAsync();
        Assert.That(all.TrimEnd(), Does.EndWith("data: [DONE]"));
        Assert.That(all, Does.Contain("\"finish_reason\""));
    }

    private async Task<(List<JsonElement> Events, bool Done)> ReadStream(string path, object body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        using var r = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.That(r.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/event-stream"));
        var events = new List<JsonElement>();
        bool done = false;
        using var reader = new StreamReader(await r.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is string line)
        {
            if (!line.StartsWith("data: ")) continue;
            string data = line[6..];
            if (data == "[DONE]") { done = true; break; }
            events.Add(JsonDocument.Parse(data).RootElement.Clone());
        }
        return (events, done);
    }
}
