using System.Diagnostics;
using Spectre.Console;

namespace KernelEngine.Cli;

/// <summary>
/// Progress of long CLI work on stderr (stdout stays the command's output): a bar with percentage and time remaining
/// when stderr is a terminal, else a plain line per 10 % — and nothing at all for work that ends within two seconds.
/// </summary>
internal static class CliProgress
{
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(2);

    /// <summary>Runs <paramref name="work"/>, which reports a fraction in [0, 1] through the callback it is given.</summary>
    public static T Run<T>(string title, Func<Action<double>, T> work)
    {
        if (Console.IsErrorRedirected) return Plain(title, work);
        T result = default!;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: 1);
                result = work(f => task.Value = Math.Clamp(f, 0, 1));
                task.Value = 1;
            });
        return result;
    }

    private static T Plain<T>(string title, Func<Action<double>, T> work)
    {
        var sw = Stopwatch.StartNew();
        int shown = -1;
        var gate = new object();
        var result = work(f =>
        {
            int tenth = (int)Math.Floor(Math.Clamp(f, 0, 1) * 10);
            lock (gate)
            {
                if (tenth <= shown || sw.Elapsed < Quiet) return;
                shown = tenth;
                Console.Error.WriteLine($"[{title}: {tenth * 10} %, {sw.Elapsed.TotalSeconds:F0} s]");
            }
        });
        return result;
    }

    /// <summary>Loads a model with a progress bar over its weights.</summary>
    public static Model Load(string path, ModelOptions options) =>
        Run($"loading {Path.GetFileName(Path.TrimEndingDirectorySeparator(path))}", report =>
            Model.LoadAsync(path, options, new Reporter<LoadProgress>(p => report(p.Fraction))).GetAwaiter().GetResult());

    /// <summary>IProgress that reports on the worker's thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
    public sealed class Reporter<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
