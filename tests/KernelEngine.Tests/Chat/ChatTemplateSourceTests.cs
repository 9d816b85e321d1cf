using System.Text.Json;
using KernelEngine.Chat;
using KernelEngine.Tests.Hardening;
using NUnit.Framework;

namespace KernelEngine.Tests.Chat;

/// <summary>Where a chat's template and special tokens come from: tokenizer_config.json's string or list of named templates
/// ("default", and "tool_use" when tools are offered), bos_token/eos_token as strings or {"content": ...}; ChatML when a
/// model ships no template.</summary>
public sealed class ChatTemplateSourceTests
{
    [Test]
    public void NamedTemplates_DefaultAndToolUse()
    {
        using var dir = TempModel.Stories();
        File.WriteAllText(Path.Combine(dir.Dir, "tokenizer_config.json"), JsonSerializer.Serialize(new
        {
            chat_template = new[]
            {
                new { name = "default", template = "D{% for m in messages %}[{{ m.content }}]{% endfor %}" },
                new { name = "tool_use", template = "T{{ tools | length }}{% for m in messages %}[{{ m.content }}]{% endfor %}" },
            },
            bos_token = new { content = "<s>", lstrip = false }, eos_token = "</s>",
        }));
        using var model = Model.Load(dir.Dir);
        Assert.That(model.ChatTemplate, Does.StartWith("D"));
        Assert.That(model.ToolUseChatTemplate, Does.StartWith("T"));
        Assert.That((model.BosText, model.EosText), Is.EqualTo(("<s>", "</s>")));
        using var chat = model.CreateChat();
        chat.Add(KernelEngine.Chat.ChatMessage.User("hi"));
        Assert.That(chat.RenderPrompt(), Is.EqualTo("D[hi]"));
        Assert.That(chat.RenderPrompt(tools: [new ChatTool("f")]), Is.EqualTo("T1[hi]"));
    }

    [Test]
    public void NoTemplate_FallsBackToChatML_AndVocabularyPieces()
    {
        using var model = Model.Load(SharedData.Stories);
        Assert.That(model.ChatTemplate, Is.Null);
        Assert.That((model.BosText, model.EosText), Is.EqualTo(("<s>", "</s>")), "stories260K's BOS/EOS pieces");
        using var chat = model.CreateChat(new ChatSettings { SystemPrompt = "S" });
        chat.Add(KernelEngine.Chat.ChatMessage.User("U"));
        Assert.That(chat.RenderPrompt(), Is.EqualTo("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"));
    }
}
