using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace KernelEngine.Server;

/// <summary>Server-sent events as OpenAI streams them: <c>data: {json}</c> per chunk, flushed at once, ending in <c>data: [DONE]</c>.</summary>
internal static class Sse
{
    public static void Start(HttpResponse response)
    {
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    public static async Task WriteAsync(HttpResponse response, object chunk, CancellationToken ct)
    {
        await response.WriteAsync("data: " + JsonSerializer.Serialize(chunk, Wire.Options) + "\n\n", ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }

    public static async Task DoneAsync(HttpResponse response, CancellationToken ct)
    {
        await response.WriteAsync("data: [DONE]\n\n", ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }
}
