// An ASP.NET Core endpoint over a model: dotnet run -- MODEL_DIR   then POST /generate {"prompt": "...", "max_tokens": 64}
// (--self-test: starts on a free port, calls the endpoint once, prints the answer and exits).
using System.Net.Http.Json;
using KernelEngine;

if (args.Length < 1) { Console.Error.WriteLine("usage: WebApi MODEL_DIR [--self-test]"); return 2; }
bool selfTest = args.Contains("--self-test");
var builder = WebApplication.CreateBuilder();
builder.Logging.ClearProviders();
builder.Services.AddSingleton(_ => Model.Load(args[0]));
var app = builder.Build();
app.MapPost("/generate", async (GenerateRequest request, Model model, CancellationToken ct) =>
{
    if (string.IsNullOrEmpty(request.Prompt)) return Results.BadRequest(new { error = "prompt is required" });
    using var session = model.CreateSession();   // one session per request: sessions run concurrently on one model
    var text = new System.Text.StringBuilder();
    await foreach (var t in session.GenerateAsync(request.Prompt, new GenerationSettings { MaxTokens = request.MaxTokens ?? 64 }, ct))
        text.Append(t.Text);
    var s = session.LastStats!;
    return Results.Ok(new { text = text.ToString(), prompt_tokens = s.PromptTokens, completion_tokens = s.GeneratedTokens });
});
if (!selfTest)
{
    await app.RunAsync();
    return 0;
}
app.Urls.Add("http://127.0.0.1:0");
await app.StartAsync();
string url = app.Urls.First();
using var http = new HttpClient();
var reply = await http.PostAsJsonAsync($"{url}/generate", new GenerateRequest("Once upon a time", 16));
Console.WriteLine($"{(int)reply.StatusCode} {await reply.Content.ReadAsStringAsync()}");
var bad = await http.PostAsJsonAsync($"{url}/generate", new GenerateRequest("", 16));
Console.WriteLine($"{(int)bad.StatusCode} {await bad.Content.ReadAsStringAsync()}");
await app.StopAsync();
return reply.IsSuccessStatusCode && (int)bad.StatusCode == 400 ? 0 : 1;

record GenerateRequest(string? Prompt, int? MaxTokens);
