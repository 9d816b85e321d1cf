using System.Text.Json;

namespace KernelEngine.Tests;

/// <summary>reference.json of the shared models, parsed.</summary>
public sealed class Reference
{
    public required int[] BosGreedyIds { get; init; }
    public required string BosGreedyText { get; init; }
    public required float[][] LogitsAtPos { get; init; }
    public required Dictionary<string, int[]> EncodeExamples { get; init; }

    public static Reference Stories()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(SharedData.Stories, "reference.json")));
        var g = doc.RootElement.GetProperty("bos_greedy");
        var logits = g.GetProperty("logits_at_pos");
        return new Reference
        {
            BosGreedyIds = g.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            BosGreedyText = g.GetProperty("text").GetString()!,
            LogitsAtPos = Enumerable.Range(0, 3).Select(i => logits.GetProperty(i.ToString()).EnumerateArray().Select(e => e.GetSingle()).ToArray()).ToArray(),
            EncodeExamples = doc.RootElement.GetProperty("encode_examples").EnumerateObject()
                .ToDictionary(p => p.Name, p => p.Value.EnumerateArray().Select(e => e.GetInt32()).ToArray()),
        };
    }
}

/// <summary>tiny-random-gpt2 reference.json.</summary>
public sealed class Gpt2Reference
{
    public required (int[] Prompt, int[] Next)[] Cases { get; init; }
    public required int[] LogitIds { get; init; }
    public required double[][] Logits { get; init; }

    public static Gpt2Reference Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(SharedData.Gpt2Tiny, "reference.json")));
        var r = doc.RootElement;
        var l = r.GetProperty("logits_float64");
        return new Gpt2Reference
        {
            Cases = r.GetProperty("cases").EnumerateArray().Select(c => (
                c.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                c.GetProperty("greedy_next").EnumerateArray().Select(e => e.GetInt32()).ToArray())).ToArray(),
            LogitIds = l.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            Logits = l.GetProperty("logits").EnumerateArray().Select(row => row.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray(),
        };
    }
}
