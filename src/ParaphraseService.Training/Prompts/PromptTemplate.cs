namespace ParaphraseService.Training.Prompts;

/// <summary>
/// How a text is put to the model, and where the model's answer ends. <see cref="Template"/> holds the placeholder
/// <see cref="Placeholder"/> exactly once; <see cref="EndMarker"/> is the text that ends a candidate (pass it to the
/// generator as a stop sequence as well, so it stops there).
/// </summary>
public sealed class PromptTemplate
{
    public const string Placeholder = "{text}";

    /// <summary>GPT-style models end a one-line answer with a newline, so that is the default end marker.</summary>
    public const string DefaultEndMarker = "\n";

    /// <summary>
    /// The prompt a fine-tune trains with unless told otherwise, written into the adapter's metadata, and the prompt an
    /// adapter whose metadata names none is served with (<see cref="ForAdapter"/>): an adapter is asked as it was taught.
    /// </summary>
    public const string FineTuneTemplateText = "Original: {text}\nParaphrase:";

    /// <summary>
    /// The few-shot prompt for the base model without an adapter: four short, varied "Original:/Paraphrase:" pairs
    /// separated by a blank line, then the input. It ends with "Paraphrase:" and no space, because GPT-2 tokens carry
    /// their leading space (" The"), so the model writes " paraphrase\n" and the newline ends the candidate.
    /// </summary>
    public const string DefaultTemplateText =
        "Original: The meeting has been moved to Thursday afternoon.\n" +
        "Paraphrase: The meeting will now take place on Thursday afternoon.\n" +
        "\n" +
        "Original: Could you send me the report by Friday?\n" +
        "Paraphrase: Would you be able to get the report to me by Friday?\n" +
        "\n" +
        "Original: Regular exercise improves both physical and mental health.\n" +
        "Paraphrase: Working out regularly is good for the body and the mind.\n" +
        "\n" +
        "Original: The company's profits were higher than analysts expected.\n" +
        "Paraphrase: The firm earned more than analysts had predicted.\n" +
        "\n" +
        "Original: {text}\n" +
        "Paraphrase:";

    /// <summary>The few-shot prompt <see cref="DefaultTemplateText"/>, ended by a newline: for the base model alone, never for an adapter.</summary>
    public static PromptTemplate Default { get; } = new(DefaultTemplateText, DefaultEndMarker);

    /// <summary><see cref="FineTuneTemplateText"/>, ended by a newline: what a fine-tune trains with and an adapter without a template is served with.</summary>
    public static PromptTemplate FineTuneDefault { get; } = new(FineTuneTemplateText, DefaultEndMarker);

    /// <exception cref="ArgumentException">
    /// <paramref name="template"/> is empty or does not hold <see cref="Placeholder"/> exactly once, or
    /// <paramref name="endMarker"/> is empty.
    /// </exception>
    public PromptTemplate(string template, string endMarker = DefaultEndMarker)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(endMarker);
        if (string.IsNullOrWhiteSpace(template))
            throw new ArgumentException($"A prompt template must not be empty; it needs the placeholder {Placeholder} once.", nameof(template));
        var count = Occurrences(template, Placeholder);
        if (count != 1)
            throw new ArgumentException(
                $"A prompt template must contain the placeholder {Placeholder} exactly once; this one contains it {count} times.",
                nameof(template));
        if (endMarker.Length == 0)
            throw new ArgumentException("The end marker of a prompt template must not be empty.", nameof(endMarker));
        Template = template;
        EndMarker = endMarker;
    }

    public string Template { get; }

    public string EndMarker { get; }

    /// <summary>
    /// The prompt to serve an adapter with, or to train one with: <paramref name="template"/> (an adapter's
    /// <c>prompt_template</c> in <c>paraphrase_adapter.json</c>, or a fine-tune's <c>promptTemplate</c>), or
    /// <see cref="FineTuneDefault"/> when there is none (an adapter without metadata, or whose metadata names no
    /// template, was trained with it, or at least not with the few-shot prompt). The base model without an adapter is
    /// served with <see cref="Default"/>: see <see cref="ForModel"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The template is invalid (see the constructor).</exception>
    public static PromptTemplate ForAdapter(string? template, string endMarker = DefaultEndMarker) => template is null
        ? endMarker == DefaultEndMarker ? FineTuneDefault : new PromptTemplate(FineTuneTemplateText, endMarker)
        : new PromptTemplate(template, endMarker);

    /// <summary>
    /// The prompt a request is served with: the base model alone (<paramref name="withAdapter"/> false) gets the few-shot
    /// <see cref="Default"/>; an adapter gets <see cref="ForAdapter"/>(<paramref name="adapterTemplate"/>), its stored
    /// template or <see cref="FineTuneDefault"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The adapter's template is invalid (see the constructor).</exception>
    public static PromptTemplate ForModel(bool withAdapter, string? adapterTemplate) =>
        withAdapter ? ForAdapter(adapterTemplate) : Default;

    /// <summary>The prompt for <paramref name="text"/>: the template with the placeholder replaced by the trimmed text.</summary>
    /// <remarks>Only the template's placeholder is replaced: a "{text}" inside the input stays as it is.</remarks>
    public string Render(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var at = Template.IndexOf(Placeholder, StringComparison.Ordinal);
        return string.Concat(Template.AsSpan(0, at), text.Trim(), Template.AsSpan(at + Placeholder.Length));
    }

    /// <summary>
    /// The candidate in generated text: everything before the first <see cref="EndMarker"/> (all of it when there is
    /// none, e.g. the generator already stopped there or ran out of tokens), trimmed; null when that is empty.
    /// </summary>
    public string? Cut(string generated)
    {
        ArgumentNullException.ThrowIfNull(generated);
        var end = generated.IndexOf(EndMarker, StringComparison.Ordinal);
        var candidate = (end < 0 ? generated : generated[..end]).Trim();
        return candidate.Length == 0 ? null : candidate;
    }

    public override string ToString() => Template;

    private static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
            count++;
        return count;
    }
}
