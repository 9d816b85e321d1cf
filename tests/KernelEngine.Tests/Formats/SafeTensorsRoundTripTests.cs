using KernelEngine.Formats;
using NUnit.Framework;

namespace KernelEngine.Tests.Formats;

public sealed class SafeTensorsRoundTripTests
{
    [Test]
    public void WriteThenRead_EveryDtype_SameBytesShapesAndMetadata()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ke-rt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var rnd = new Random(5);
            var w = new SafeTensorsWriter().Metadata("format", "pt");
            var expected = new Dictionary<string, (SafeTensorDType, long[], byte[])>();
            foreach (SafeTensorDType t in Enum.GetValues<SafeTensorDType>())
            {
                long[] shape = [3, 5];
                var data = new byte[15 * t.ElementBytes()];
                rnd.NextBytes(data);
                w.Add("t_" + t, t, shape, data);
                expected["t_" + t] = (t, shape, data);
            }
            w.Add("scalar", SafeTensorDType.F32, [], new byte[4]);
            string path = Path.Combine(dir, "model.safetensors");
            w.Write(path);
            using var f = SafeTensorsFile.Open(path);
            Assert.That(f.Metadata["format"], Is.EqualTo("pt"));
            foreach (var (name, (dtype, shape, data)) in expected)
            {
                var info = f.Tensors[name];
                Assert.That(info.DType, Is.EqualTo(dtype));
                Assert.That(info.Shape, Is.EqualTo(shape));
                Assert.That(f.Data(info).ToArray(), Is.EqualTo(data));
            }
            Assert.That((new FileInfo(path).Length - f.Tensors.Values.Sum(t => t.ByteLength)) % 8, Is.EqualTo(0), "header padded to 8 bytes");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void ShardedFolder_IsReadThroughTheIndex()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ke-shard-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            // Split stories260K into two shards plus an index, then check the model still reproduces its reference.
            var map = new Dictionary<string, string>();
            using (var src = SafeTensorsFile.Open(Path.Combine(SharedData.Stories, "model.safetensors")))
            {
                var a = new SafeTensorsWriter(); var b = new SafeTensorsWriter();
                int i = 0;
                foreach (var (name, info) in src.Tensors.OrderBy(t => t.Key))
                {
                    string shard = i++ % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
                    (i % 2 == 1 ? a : b).Add(name, info.DType, info.Shape, src.Data(info).ToArray());
                    map[name] = shard;
                }
                a.Write(Path.Combine(dir, "model-00001-of-00002.safetensors"));
                b.Write(Path.Combine(dir, "model-00002-of-00002.safetensors"));
            }
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), System.Text.Json.JsonSerializer.Serialize(new { metadata = new { }, weight_map = map }));
            File.Copy(Path.Combine(SharedData.Stories, "config.json"), Path.Combine(dir, "config.json"));
            File.Copy(Path.Combine(SharedData.Stories, "tokenizer.model"), Path.Combine(dir, "tokenizer.model"));
            using var model = Model.Load(dir);
            using var s = model.CreateSession();
            var ids = s.Generate([1], new GenerationSettings { MaxTokens = 20, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy }).Select(t => t.Id);
            Assert.That(ids, Is.EqualTo(Reference.Stories().BosGreedyIds.Skip(1).Take(20)));
            Assert.That(model.Store!.Files, Has.Count.EqualTo(2));
        }
        finally { Directory.Delete(dir, true); }
    }
}
