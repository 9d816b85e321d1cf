// A streaming console chat: dotnet run -- MODEL_DIR   (type messages; an empty line or end of input quits)
using KernelEngine;
using KernelEngine.Chat;

if (args.Length < 1) { Console.Error.WriteLine("usage: ChatConsole MODEL_DIR|FILE.gguf [max-tokens]"); return 2; }
int maxTokens = args.Length > 1 ? int.Parse(args[1]) : 128;
using var model = await Model.LoadAsync(args[0]);
using var chat = model.CreateChat(new ChatSettings { SystemPrompt = "You are a helpful assistant." });
var settings = new GenerationSettings { MaxTokens = maxTokens };
while (Console.ReadLine() is { Length: > 0 } line)
{
    Console.Write("assistant: ");
    await foreach (var text in chat.SendAsync(line, settings)) Console.Write(text);
    var r = chat.LastReply!;
    Console.WriteLine($"\n[{r.Usage.CompletionTokens} tokens, {r.Stats.DecodeTokensPerSecond:F0} tok/s, {r.FinishReason}]");
}
return 0;
