using System.Text.Json;
using System.Text.RegularExpressions;
using KernelEngine.Benchmarking;
using KernelEngine.Constraints;
using KernelEngine.Decoding;
using KernelEngine.Kernels;
using Microsoft.Extensions.AI;
using NUnit.Framework;

namespace KernelEngine.Tests.Constraints;

/// <summary>
/// Grammar- and schema-constrained decoding: sampled generations (temperature 1, one seed each) must parse with
/// System.Text.Json and validate against their schema (<see cref="SchemaCheck"/>, written from the specification), or
/// match a regular expression equivalent to their GBNF grammar; bad grammars and schemas are typed errors that say where.
/// Schemas bound their strings and arrays, so every document ends within the token budget.
/// </summary>
public sealed class ConstrainedDecodingTests
{
    public static readonly string[] Schemas =
    [
        """{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer"}},"required":["name","age"]}""",
        """{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":4}""",
        """{"enum":["red","green","blue"]}""",
        """{"const":{"ok":true}}""",
        """{"type":["string","null"],"maxLength":8}""",
        """{"anyOf":[{"type":"boolean"},{"type":"number"}]}""",
        """{"type":"object","properties":{"a":{"type":"boolean"},"b":{"type":"null"},"c":{"type":"string","minLength":1,"maxLength":5}},"required":["b"]}""",
        """{"$defs":{"pt":{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"}},"required":["x","y"]}},"type":"array","items":{"$ref":"#/$defs/pt"},"maxItems":3}""",
        """{"type":"object","additionalProperties":false,"properties":{"id":{"type":"string","format":"uuid"}},"required":["id"]}""",
        """{"type":"object","properties":{"d":{"type":"string","format":"date"},"tags":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":3}},"required":["d","tags"]}""",
        """{"oneOf":[{"type":"object","properties":{"k":{"const":"v"}},"required":["k"]},{"type":"array","maxItems":0}]}""",
    ];

    /// <summary>Temperature 1 over the whole vocabulary (no top-k, top-p or min-p): every token the grammar allows can come.</summary>
    private static SamplingSettings Free(ulong seed) => new() { Temperature = 1f, TopK = 0, TopP = 1f, MinP = 0f, Seed = seed };

    private static Model? _stories, _large;
    private static Model Stories => _stories ??= Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 512 });
    /// <summary>Random weights, a 32,000-token byte-level vocabulary.</summary>
    private static Model Large => _large ??= Model.Load(Presets.Materialize("llama-tiny-32k", WeightType.F32), new ModelOptions { ContextLength = 1024 });

    [OneTimeTearDown]
    public void FreeModels() { _stories?.Dispose(); _large?.Dispose(); _stories = _large = null; }

    private static string Generate(Model model, GenerationSettings settings, string prompt = "Once upon a time")
    {
        using var s = model.CreateSession();
        var text = string.Concat(s.Generate(s.EncodePrompt(prompt), settings).Select(t => t.Text));
        Assert.That(s.LastStats!.StopReason, Is.EqualTo(StopReason.Eos), $"the document ended before the budget: {text}");
        return text;
    }

    private static IEnumerable<TestCaseData> SchemaCases() =>
        from model in new[] { "stories260K", "llama-tiny-32k" }
        from i in Enumerable.Range(0, Schemas.Length)
        select new TestCaseData(model, i, Schemas[i]).SetName($"{model}_Schema{i:D2}");

    [TestCaseSource(nameof(SchemaCases))]
    public void TwentySampledDocuments_ParseAndValidate(string model, int index, string schema)
    {
        var m = model == "stories260K" ? Stories : Large;
        using var doc = JsonDocument.Parse(schema);
        for (int seed = 0; seed < 20; seed++)
        {
            var settings = new GenerationSettings
            {
                MaxTokens = 400, JsonSchema = schema,
                Sampling = Free((ulong)(1000 * index + seed)),
            };
            string text = Generate(m, settings, model == "stories260K" ? "Once upon a time" : "Hello");
            JsonDocument parsed;
            try { parsed = JsonDocument.Parse(text); }
            catch (JsonException e) { Assert.Fail($"seed {seed}: not JSON ({e.Message}): {text}"); return; }
            using (parsed)
                Assert.That(SchemaCheck.Error(parsed.RootElement, doc.RootElement, doc.RootElement), Is.Null, $"seed {seed}: {text}");
        }
    }

    /// <summary>llama.cpp's grammar kinds: a choice of labels, a list, arithmetic (bounded here), each against an
    /// equivalent regular expression; and a JSON grammar whose outputs must parse.</summary>
    [TestCase("root ::= (\"positive\" | \"negative\" | \"neutral\")", @"^(positive|negative|neutral)$")]
    [TestCase("root ::= item{1,3}\nitem ::= \"- \" [a-z]{1,8} \"\\n\"", @"^(- [a-z]{1,8}\n){1,3}$")]
    [TestCase("root ::= term ([-+*/] term){0,3} \"=\"\nterm ::= [0-9]{1,3} | \"(\" [0-9]{1,3} [-+*/] [0-9]{1,3} \")\"", @"^(\d{1,3}|\(\d{1,3}[-+*/]\d{1,3}\))([-+*/](\d{1,3}|\(\d{1,3}[-+*/]\d{1,3}\))){0,3}=$")]
    public void GbnfGrammars_SampledOutputsMatchTheirLanguage(string gbnf, string regex)
    {
        for (int seed = 0; seed < 20; seed++)
        {
            var settings = new GenerationSettings { MaxTokens = 200, Grammar = gbnf, Sampling = Free((ulong)seed) };
            string text = Generate(Stories, settings);
            Assert.That(Regex.IsMatch(text, regex), Is.True, $"seed {seed}: {text}");
        }
    }

    [Test]
    public void JsonGbnf_OutputsParse()
    {
        const string json = """
            root ::= object
            object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value){0,2} )? "}"
            value ::= object | array | string | number | ("true" | "false" | "null")
            array ::= "[" ws ( value ("," ws value){0,2} )? "]"
            string ::= "\"" [a-z ]{0,6} "\""
            number ::= "-"? [0-9]{1,4} ("." [0-9]{1,3})?
            ws ::= " "?
            """;
        for (int seed = 0; seed < 20; seed++)
        {
            var settings = new GenerationSettings { MaxTokens = 300, Grammar = json, Sampling = Free((ulong)seed) };
            string text;
            try { text = Generate(Stories, settings); }
            catch (AssertionException) when (seed > 0) { continue; }   // nested objects can outgrow the budget; the first must not
            Assert.DoesNotThrow(() => JsonDocument.Parse(text).Dispose(), $"seed {seed}: {text}");
        }
    }

    /// <summary>Unbounded strings and arrays with a budget that would cut them: the generator closes each document the
    /// shortest way once the budget gets near what the document still needs.</summary>
    [TestCase(24)]
    [TestCase(40)]
    public void DocumentsTheBudgetWouldCut_AreClosedInTime(int maxTokens)
    {
        const string schema = """{"type":"object","properties":{"story":{"type":"string"},"words":{"type":"array","items":{"type":"string"}}},"required":["story","words"]}""";
        using var doc = JsonDocument.Parse(schema);
        for (int seed = 0; seed < 20; seed++)
        {
            var settings = new GenerationSettings
            {
                MaxTokens = maxTokens, JsonSchema = schema,
                Sampling = Free((ulong)seed),
            };
            using var s = Stories.CreateSession();
            var tokens = s.Generate(s.EncodePrompt("Once upon a time"), settings).ToList();
            string text = string.Concat(tokens.Select(t => t.Text));
            Assert.That(s.LastStats!.GeneratedTokens, Is.LessThanOrEqualTo(maxTokens));
            using var parsed = JsonDocument.Parse(text);
            Assert.That(SchemaCheck.Error(parsed.RootElement, doc.RootElement, doc.RootElement), Is.Null, $"seed {seed}: {text}");
        }
    }

    /// <summary>Speculative decoding with a grammar: drafts (of a draft model, or prompt lookup) are masked by the grammar
    /// at their position, and so are the target's rows, so greedy speculative decoding gives plain constrained greedy's
    /// ids, and sampled documents validate. Multi-draft settings run one branch under a grammar.</summary>
    [TestCase(0, 1)]
    [TestCase(0, 3)]
    [TestCase(3, 1)]
    public void SpeculativeDecoding_KeepsToTheSchema(int lookup, int drafts)
    {
        string schema = Schemas[0];
        using var doc = JsonDocument.Parse(schema);
        using var target = Stories.CreateSession();
        using var draftModel = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 512 });
        using var draft = lookup > 0 ? null : draftModel.CreateSession();
        var dec = new SpeculativeDecoder(target, draft, new SpeculativeSettings { Gamma = 4, Drafts = drafts, LookupNgram = lookup });
        var prompt = target.EncodePrompt("Once upon a time");
        var greedy = new GenerationSettings { MaxTokens = 300, JsonSchema = schema, Sampling = SamplingSettings.Greedy };
        int[] plain;
        using (var s = Stories.CreateSession()) plain = s.Generate(prompt, greedy).Select(t => t.Id).ToArray();
        Assert.That(dec.Generate(prompt, greedy).Select(t => t.Id).ToArray(), Is.EqualTo(plain), "greedy: the same ids as plain constrained decoding");
        for (int seed = 0; seed < 10; seed++)
        {
            var settings = new GenerationSettings { MaxTokens = 300, JsonSchema = schema, Sampling = Free((ulong)seed) };
            string text = string.Concat(dec.Generate(prompt, settings).Select(t => t.Text));
            using var parsed = JsonDocument.Parse(text);
            Assert.That(SchemaCheck.Error(parsed.RootElement, doc.RootElement, doc.RootElement), Is.Null, $"seed {seed}: {text}");
        }
        Assert.That(target.LastStats!.Loop!.TargetPasses, Is.LessThan(target.LastStats.GeneratedTokens), "drafts were accepted");
    }

    [Test]
    public async Task ChatClient_ResponseFormatJsonSchema_AnswersValidate()
    {
        using var schema = JsonDocument.Parse(Schemas[9]);
        using Microsoft.Extensions.AI.IChatClient client = Stories.AsChatClient();
        for (int seed = 0; seed < 5; seed++)
        {
            var options = new Microsoft.Extensions.AI.ChatOptions
            {
                ResponseFormat = Microsoft.Extensions.AI.ChatResponseFormat.ForJsonSchema(schema.RootElement, "entry"),
                Temperature = 1f, TopK = 0, TopP = 1f, Seed = seed, MaxOutputTokens = 300,
            };
            var answer = (await client.GetResponseAsync("Write an entry.", options)).Text;
            using var parsed = JsonDocument.Parse(answer);
            Assert.That(SchemaCheck.Error(parsed.RootElement, schema.RootElement, schema.RootElement), Is.Null, answer);
        }
    }

    [Test]
    public void BatchedGeneration_FollowsTheSchemaToo()
    {
        using var batch = new BatchedGenerator(Stories, new BatchedGeneratorOptions { MaxBatch = 4 });
        var requests = Enumerable.Range(0, 6).Select(seed => batch.Submit(Stories.EncodePrompt("Once"), new GenerationSettings
        {
            MaxTokens = 400, JsonSchema = Schemas[0], Sampling = Free((ulong)seed),
        })).ToList();
        using var schema = JsonDocument.Parse(Schemas[0]);
        foreach (var r in requests)
        {
            string text = string.Concat(r.Tokens.ToBlockingEnumerable().Select(t => t.Text));
            using var parsed = JsonDocument.Parse(text);
            Assert.That(SchemaCheck.Error(parsed.RootElement, schema.RootElement, schema.RootElement), Is.Null, text);
        }
    }

    [TestCase("root ::= foo", "'foo' is used but never defined")]
    [TestCase("main ::= \"a\"", "no 'root' rule")]
    [TestCase("root ::= root \"a\" | \"b\"", "left-recursive")]
    [TestCase("root ::= \"a\\q\"", "unknown escape")]
    [TestCase("root ::= [b-a]", "reversed")]
    [TestCase("root ::= \"a\" (\"b\"", "expected ')'")]
    public void BadGrammars_AreRequestErrorsThatSayWhere(string gbnf, string expected)
    {
        var e = Assert.Throws<InvalidRequestException>(() => Grammar.Parse(gbnf));
        Assert.That(e!.Message, Does.Contain(expected));
        var settings = new GenerationSettings { Grammar = gbnf };
        Assert.Throws<InvalidRequestException>(settings.Validate);
    }

    [TestCase("""{"type":"string","pattern":"^a+$"}""", "'pattern' at #")]
    [TestCase("""{"type":"object","properties":{"n":{"type":"integer","minimum":3}}}""", "'minimum' at #/properties/n")]
    [TestCase("""{"$ref":"#/$defs/missing"}""", "does not name a definition")]
    [TestCase("""{"type":"whatever"}""", "not a JSON Schema type")]
    [TestCase("""{"type":"object","properties":{"a":{}},"required":["b"]}""", "required property 'b'")]
    [TestCase("""not json""", "not JSON")]
    public void BadSchemas_AreRequestErrorsThatSayWhere(string schema, string expected)
    {
        var e = Assert.Throws<InvalidRequestException>(() => JsonSchemaGrammar.Compile(schema));
        Assert.That(e!.Message, Does.Contain(expected));
    }

    /// <summary>Characters stories260K's 512 tokens spell only byte by byte (byte-fallback pieces, each a part of a UTF-8
    /// character): the matcher keeps the partial character pending between tokens.</summary>
    [TestCase("root ::= \"\u4E2D\u6587\" \"!\"", "中文!")]
    [TestCase("root ::= [\u00E0-\u00E9]{3}", null)]
    public void CharactersSpelledByteByByte_AreReachable(string gbnf, string? expected)
    {
        for (int seed = 0; seed < 5; seed++)
        {
            string text = Generate(Stories, new GenerationSettings { MaxTokens = 20, Grammar = gbnf, Sampling = Free((ulong)seed) });
            if (expected != null) Assert.That(text, Is.EqualTo(expected));
            else Assert.That(text, Does.Match("^[à-é]{3}$"));
        }
    }

}
