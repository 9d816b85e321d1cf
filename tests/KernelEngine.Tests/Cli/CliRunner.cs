using System.Diagnostics;

namespace KernelEngine.Tests.Cli;

/// <summary>Runs the built <c>ke</c> CLI (ke.dll beside the tests) as a separate process.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "ke.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException("ke did not finish in 120 s: " + string.Join(' ', args)); }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}

/// <summary>A <c>ke</c> process driven through its stdin, with its output collected as it comes (interactive commands).</summary>
public sealed class CliSession : IDisposable
{
    private readonly Process _p;
    private readonly System.Text.StringBuilder _out = new(), _err = new();

    public CliSession(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ke.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        _p = Process.Start(psi)!;
        Pump(_p.StandardOutput, _out);
        Pump(_p.StandardError, _err);
    }

    /// <summary>Collects a stream character by character (a prompt without a newline shows up at once).</summary>
    private static void Pump(StreamReader reader, System.Text.StringBuilder into) => new Thread(() =>
    {
        var buf = new char[256];
        int n;
        while ((n = reader.Read(buf, 0, buf.Length)) > 0) lock (into) into.Append(buf, 0, n);
    }) { IsBackground = true }.Start();

    public string Stdout { get { lock (_out) return _out.ToString(); } }
    public string Stderr { get { lock (_err) return _err.ToString(); } }
    public int Id => _p.Id;

    public void WriteLine(string line) { _p.StandardInput.WriteLine(line); _p.StandardInput.Flush(); }
    public void CloseInput() => _p.StandardInput.Close();

    /// <summary>Waits until <paramref name="done"/> holds (polling), or fails after the timeout.</summary>
    public void WaitFor(Func<CliSession, bool> done, string what, int timeoutMs = 60_000)
    {
        var sw = Stopwatch.StartNew();
        while (!done(this))
        {
            if (sw.ElapsedMilliseconds > timeoutMs || _p.HasExited && !done(this))
                throw new TimeoutException($"ke never showed {what}; stdout: {Stdout}; stderr: {Stderr}");
            Thread.Sleep(20);
        }
    }

    /// <summary>Ctrl+C: SIGINT to the process.</summary>
    public void Interrupt()
    {
        using var kill = Process.Start("kill", ["-INT", _p.Id.ToString()]);
        kill.WaitForExit();
    }

    public int WaitForExit(int timeoutMs = 60_000)
    {
        if (!_p.WaitForExit(timeoutMs)) { _p.Kill(true); throw new TimeoutException("ke did not exit"); }
        _p.WaitForExit();
        return _p.ExitCode;
    }

    public void Dispose()
    {
        if (!_p.HasExited) _p.Kill(true);
        _p.Dispose();
    }
}
