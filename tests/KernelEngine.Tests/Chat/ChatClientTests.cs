using System.Text.Json;
using KernelEngine.Chat;
using KernelEngine.Tests.Hardening;
using KernelEngine.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using KeChatMessage = KernelEngine.Chat.ChatMessage;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace KernelEngine.Tests.Chat;

/// <summary>
/// Chat over stories260K with the shared ChatML template in its tokenizer_config.json (a fixture folder): the chat API and
/// the IChatClient give the greedy output of a plain Session fed the template's rendering (the rendering itself is checked
/// against jinja2 in ChatTemplateCasesTests), later turns reuse the cache, stop strings stay out of the text, usage counts
/// are the tokens fed and generated, and a forced tool call makes a round trip through FunctionInvokingChatClient.
/// </summary>
public sealed class ChatClientTests
{
    private TempModel _dir = null!;
    private Model _model = null!;
    private static readonly GenerationSettings Greedy = new() { MaxTokens = 24, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy };

    [OneTimeSetUp]
    public void Setup()
    {
        string template = File.ReadAllText(SharedData.Require("chat-templates/chatml.jinja"));
        _dir = TempModel.Stories();
        File.WriteAllText(Path.Combine(_dir.Dir, "tokenizer_config.json"), JsonSerializer.Serialize(new { chat_template = template, bos_token = "<s>", eos_token = "</s>" }));
        _model = Model.Load(_dir.Dir);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _model?.Dispose();
        _dir?.Dispose();
    }

    /// <summary>What a plain session generates for the template's rendering of <paramref name="messages"/>.</summary>
    private (string Text, GenerationStats Stats, int PromptTokens) Plain(IEnumerable<KeChatMessage> messages, GenerationSettings settings)
    {
        var vars = new Dictionary<string, object?>
        {
            ["messages"] = messages.Select(m => new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
            ["add_generation_prompt"] = true, ["bos_token"] = "<s>", ["eos_token"] = "</s>",
        };
        string prompt = new ChatTemplate(_model.ChatTemplate!).Render(vars);
        var ids = _model.Tokenizer.EncodeWithSpecialTokens(prompt);
        Assert.That(ids, Does.Contain(_model.Tokenizer.BosId), "the template's <s> is the BOS token");
        using var s = _model.CreateSession();
        string text = string.Concat(s.Generate(ids, settings).Select(t => t.Text));
        return (text, s.LastStats!, ids.Length);
    }

    [Test]
    public void ChatSession_TwoTurns_MatchPlainSessionAndReuseTheCache()
    {
        using var chat = _model.CreateChat(new ChatSettings { SystemPrompt = "You tell stories." });
        var first = chat.Send("Once upon a time", Greedy);
        var (text1, stats1, prompt1) = Plain([KeChatMessage.System("You tell stories."), KeChatMessage.User("Once upon a time")], Greedy);
        Assert.That(first.Text, Is.EqualTo(text1));
        Assert.That(first.Usage, Is.EqualTo(new ChatUsage(prompt1, stats1.GeneratedTokens, 0)));

        var second = chat.Send("Tell me more", Greedy);
        var (text2, stats2, prompt2) = Plain([KeChatMessage.System("You tell stories."), KeChatMessage.User("Once upon a time"),
            KeChatMessage.Assistant(first.Text), KeChatMessage.User("Tell me more")], Greedy);
        Assert.That(second.Text, Is.EqualTo(text2));
        Assert.That(second.Usage.PromptTokens, Is.EqualTo(prompt2));
        Assert.That(second.Usage.CompletionTokens, Is.EqualTo(stats2.GeneratedTokens));
        // the first prompt's last token ("\n" after "assistant") may merge with the answer's first characters when retokenized
        Assert.That(second.Usage.ReusedPromptTokens, Is.GreaterThanOrEqualTo(prompt1 - 1), "the second turn feeds only what follows the first prompt");
        Assert.That(chat.Messages.Select(m => m.Role), Is.EqualTo(new[] { "system", "user", "assistant", "user", "assistant" }));
    }

    /// <summary>A message that cannot be answered (its prompt does not fit the context) is an InvalidRequestException that
    /// leaves the conversation as it was: the next turn still alternates roles as the template demands.</summary>
    [Test]
    public async Task TooLongMessage_IsRejected_AndTheConversationStaysUsable()
    {
        using var chat = _model.CreateChat();
        chat.Send("Once upon a time", Greedy);
        string huge = string.Concat(Enumerable.Repeat("story ", 2000));
        Assert.Throws<InvalidRequestException>(() => chat.Send(huge, Greedy));
        Assert.That(chat.Messages.Select(m => m.Role), Is.EqualTo(new[] { "user", "assistant" }));
        await Assert.ThrowsAsync<InvalidRequestException>(async () => { await foreach (var _ in chat.SendAsync(huge, Greedy)) { } });
        Assert.That(chat.Messages, Has.Count.EqualTo(2));
        Assert.That(chat.Send("Tell me more", Greedy).Usage.CompletionTokens, Is.GreaterThan(0));
    }

    [Test]
    public void StopStrings_AreLeftOutOfTheText()
    {
        using var chat = _model.CreateChat();
        var full = chat.Send("Once upon a time", Greedy);
        // a stop string that starts in the middle of the answer: the text ends right before it
        string stop = full.Text.Substring(full.Text.Length / 2, 4);
        int at = full.Text.IndexOf(stop, StringComparison.Ordinal);
        chat.Reset();
        var streamed = new List<string>();
        var stopped = chat.SendAsync("Once upon a time", Greedy with { StopStrings = [stop] }).ToBlockingEnumerable().ToList();
        var reply = chat.LastReply!;
        Assert.That(reply.Text, Is.EqualTo(full.Text[..at]));
        Assert.That(string.Concat(stopped), Is.EqualTo(reply.Text), "the stream never shows the stop string");
        Assert.That(reply.FinishReason, Is.EqualTo(KernelEngine.Chat.ChatFinishReason.Stop));
    }

    [Test]
    public async Task ChatClient_GreedyResponse_EqualsPlainSession_AndStreamsTheSame()
    {
        using var client = _model.AsChatClient();
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 24 };
        List<AiChatMessage> messages = [new(ChatRole.System, "You tell stories."), new(ChatRole.User, "Once upon a time")];
        var response = await client.GetResponseAsync(messages, options);
        var (text, stats, prompt) = Plain([KeChatMessage.System("You tell stories."), KeChatMessage.User("Once upon a time")], Greedy);
        Assert.That(response.Text, Is.EqualTo(text));
        Assert.That(response.Usage!.InputTokenCount, Is.EqualTo(prompt));
        Assert.That(response.Usage.OutputTokenCount, Is.EqualTo(stats.GeneratedTokens));
        Assert.That(response.FinishReason, Is.EqualTo(stats.StopReason == StopReason.Eos ? Microsoft.Extensions.AI.ChatFinishReason.Stop : Microsoft.Extensions.AI.ChatFinishReason.Length));

        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(messages, options)) updates.Add(u);
        Assert.That(string.Concat(updates.Select(u => u.Text)), Is.EqualTo(text));
        var streamed = updates.ToChatResponse();
        Assert.That(streamed.Usage!.OutputTokenCount, Is.EqualTo(stats.GeneratedTokens));
        Assert.That(streamed.FinishReason, Is.EqualTo(response.FinishReason));
    }

    [Test]
    public async Task ChatClient_RegistersWithAddChatClient()
    {
        var services = new ServiceCollection();
        services.AddChatClient(_ => _model.AsChatClient());
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IChatClient>();
        Assert.That(client.GetService<ChatClientMetadata>()!.ProviderName, Is.EqualTo("KernelEngine"));
        var r = await client.GetResponseAsync("Once upon a time", new ChatOptions { Temperature = 0, MaxOutputTokens = 4 });
        Assert.That(r.Usage!.OutputTokenCount, Is.InRange(1, 4));
    }

    /// <summary>A compact Hermes-style template (Qwen2.5's own does not fit stories260K's 512-token context): tools listed,
    /// assistant tool calls as &lt;tool_call&gt; JSON, tool results as "tool" turns.</summary>
    private const string HermesTemplate =
        "{%- if tools %}<|im_start|>system\nTools: {% for t in tools %}{{ t.function.name }} {% endfor %}<|im_end|>\n{% endif %}" +
        "{%- for m in messages %}<|im_start|>{{ m.role }}\n{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{\"name\": \"{{ c.function.name }}\", " +
        "\"arguments\": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}" +
        "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    /// <summary>The model is made to answer with a Hermes tool call (its first tokens pinned): FunctionInvokingChatClient
    /// calls the function with the parsed arguments, sends the result back as a tool message, and the model answers again.</summary>
    [Test]
    public async Task ToolCall_RoundTripsThroughFunctionInvokingChatClient()
    {
        var ke = _model.AsChatClient(new ChatSettings { Template = HermesTemplate });
        string call = "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>";
        var ids = _model.Tokenizer.Encode(call);
        Assert.That(_model.Tokenizer.Decode(ids), Is.EqualTo(call), "the pinned tokens spell the call");
        ke.PinnedReplies.Enqueue(ids);
        var cities = new List<string>();
        var weather = AIFunctionFactory.Create((string city) => { cities.Add(city); return $"21 C in {city}"; }, "get_weather", "Weather in a city");
        using var client = new ChatClientBuilder(ke).UseFunctionInvocation().Build();
        var response = await client.GetResponseAsync("What is the weather in Paris?",
            new ChatOptions { Temperature = 0, MaxOutputTokens = ids.Length, Tools = [weather] });
        Assert.That(cities, Is.EqualTo(new[] { "Paris" }));
        var contents = response.Messages.SelectMany(m => m.Contents).ToList();
        Assert.That(contents.OfType<FunctionCallContent>().Single().Arguments!["city"]!.ToString(), Is.EqualTo("Paris"));
        Assert.That(contents.OfType<FunctionResultContent>().Single().Result!.ToString(), Is.EqualTo("21 C in Paris"));
        Assert.That(response.Messages[^1].Role, Is.EqualTo(ChatRole.Assistant));
        Assert.That(response.Messages[^1].Contents.OfType<FunctionCallContent>(), Is.Empty, "the second answer is text");
    }

    /// <summary>Embeddings against the reference logits: stories260K ties its LM head to the token embeddings, so
    /// W · (last token's normalized hidden state) is the reference logit row up to a positive scale.</summary>
    [Test]
    public async Task Embeddings_AreTheNormalizedHiddenStates()
    {
        var reference = Reference.Stories();
        using var st = KernelEngine.Formats.SafeTensorsFile.Open(Path.Combine(SharedData.Stories, "model.safetensors"));
        var info = st.Tensors["model.embed_tokens.weight"];
        var w = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(st.Data(info).ToArray()).ToArray();
        int dim = _model.Config.HiddenSize, vocab = _model.Config.VocabSize;
        using var session = _model.CreateSession();
        for (int p = 0; p < 3; p++)
        {
            var e = session.Embed(reference.BosGreedyIds[..(p + 1)], meanPooling: false);
            Assert.That(Math.Sqrt(e.Sum(x => (double)x * x)), Is.EqualTo(1).Within(1e-5));
            var logits = Enumerable.Range(0, vocab).Select(v => Enumerable.Range(0, dim).Sum(d => (double)w[v * dim + d] * e[d])).ToArray();
            _ = logits;
            Assert.That(Cosine(logits, reference.LogitsAtPos[p].Select(x => (double)x).ToArray()), Is.GreaterThan(0.99999), $"position {p}");
        }
        using var generator = _model.AsEmbeddingGenerator();
        var embeddings = await generator.GenerateAsync(["Once upon a time", "Once upon a time", "The cat sat"]);
        Assert.That(embeddings, Has.Count.EqualTo(3));
        Assert.That(embeddings[0].Vector.ToArray(), Is.EqualTo(embeddings[1].Vector.ToArray()));
        Assert.That(embeddings[0].Vector.Length, Is.EqualTo(dim));
        Assert.That(Cosine(embeddings[0].Vector.ToArray().Select(x => (double)x).ToArray(), embeddings[2].Vector.ToArray().Select(x => (double)x).ToArray()), Is.LessThan(0.9999));
    }

    private static double Cosine(double[] a, double[] b) => a.Zip(b).Sum(p => p.First * p.Second) / Math.Sqrt(a.Sum(x => x * x) * b.Sum(x => x * x));

    /// <summary>A UI app's single-threaded SynchronizationContext: async generation runs the model on the thread pool.</summary>
    [Test]
    public void AsyncApis_RunTheModelOffTheCallersContext()
    {
        using var context = new SingleThreadContext();
        int uiThread = 0, modelThread = 0, chatThread = 0;
        context.Run(async () =>
        {
            uiThread = Environment.CurrentManagedThreadId;
            using var session = _model.CreateSession();
            await foreach (var _ in session.GenerateAsync("Once upon a time", Greedy with { MaxTokens = 4 })) { }
            modelThread = session.LastCallThreadId;
            using var chat = _model.CreateChat();
            await foreach (var _ in chat.SendAsync("Hi", Greedy with { MaxTokens = 4 })) { }
            chatThread = chat.Session.LastCallThreadId;
            Assert.That(Environment.CurrentManagedThreadId, Is.EqualTo(uiThread), "continuations come back to the UI thread");
        });
        Assert.That(modelThread, Is.Not.EqualTo(uiThread).And.Not.Zero);
        Assert.That(chatThread, Is.Not.EqualTo(uiThread).And.Not.Zero);
    }

    /// <summary>One thread that runs everything posted to it, like a UI dispatcher.</summary>
    private sealed class SingleThreadContext : SynchronizationContext, IDisposable
    {
        private readonly System.Collections.Concurrent.BlockingCollection<(SendOrPostCallback, object?)> _queue = new();

        public override void Post(SendOrPostCallback d, object? state) => _queue.Add((d, state));
        public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException();

        public void Run(Func<Task> body)
        {
            Exception? error = null;
            var thread = new Thread(() =>
            {
                SetSynchronizationContext(this);
                var task = body();
                task.ContinueWith(_ => _queue.CompleteAdding(), TaskScheduler.Default);
                foreach (var (d, s) in _queue.GetConsumingEnumerable()) d(s);
                error = task.Exception?.InnerException;
            });
            thread.Start();
            if (!thread.Join(TimeSpan.FromMinutes(2))) throw new TimeoutException("the UI thread did not finish");
            if (error != null) throw error;
        }

        public void Dispose() => _queue.Dispose();
    }
}

/// <summary>Tool calls in the formats of the common chat templates.</summary>
public sealed class ToolCallParserTests
{
    [Test]
    public void Hermes_SeveralCalls_AndContent()
    {
        var p = ToolCallParser.Parse("Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"y\\\": 2}\"}</tool_call>");
        Assert.That(p.Content, Is.EqualTo("Let me check."));
        Assert.That(p.Calls.Select(c => (c.Name, c.ArgumentsJson)), Is.EqualTo(new[] { ("a", "{\"x\": 1}"), ("b", "{\"y\": 2}") }));
    }

    [Test]
    public void Hermes_Unterminated_AtTheEnd()
    {
        var p = ToolCallParser.Parse("<tool_call>{\"name\": \"a\", \"arguments\": {}}");
        Assert.That(p.Calls.Single().Name, Is.EqualTo("a"));
        Assert.That(p.Content, Is.Empty);
    }

    [Test]
    public void Mistral_ArrayWithIds()
    {
        var p = ToolCallParser.Parse("[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123def\"}, {\"name\": \"b\", \"arguments\": {}}]");
        Assert.That(p.Calls.Select(c => (c.Name, c.Id)), Is.EqualTo(new (string, string?)[] { ("get_weather", "abc123def"), ("b", null) }));
        Assert.That(JsonDocument.Parse(p.Calls[0].ArgumentsJson).RootElement.GetProperty("city").GetString(), Is.EqualTo("Paris"));
    }

    [Test]
    public void Llama31_JsonAnswer_WithPythonTag_AndSemicolons()
    {
        var p = ToolCallParser.Parse("<|python_tag|>{\"name\": \"a\", \"parameters\": {\"q\": \"x\"}}; {\"type\": \"function\", \"name\": \"b\", \"parameters\": {}}");
        Assert.That(p.Calls.Select(c => c.Name), Is.EqualTo(new[] { "a", "b" }));
        Assert.That(p.Calls[0].ArgumentsJson, Is.EqualTo("{\"q\": \"x\"}"));
    }

    [TestCase("Just text, no calls.")]
    [TestCase("{\"not\": \"a call\"}")]
    [TestCase("<tool_call>not json</tool_call>")]
    [TestCase("[TOOL_CALLS] nothing")]
    public void Text_StaysText(string text)
    {
        var p = ToolCallParser.Parse(text);
        Assert.That(p.Calls, Is.Empty);
        Assert.That(p.Content, Is.EqualTo(text));
    }
}
