using ParaphraseService.Training.Prompts;
using System.Text.Json.Serialization;

namespace ParaphraseService.Api.Paraphrasing;

/// <summary>A paraphrase request: one text or several, and how to sample candidates for each.</summary>
/// <param name="Text">The text to rewrite (or use <paramref name="Texts"/>).</param>
/// <param name="Texts">Up to 32 texts, each rewritten independently.</param>
/// <param name="Adapter">A LoRA adapter's name (GET /adapters); none uses the service's default adapter (the demo model's
/// built-in paws-demo, or Adapters:Default), or the base model with a few-shot prompt where there is no default.</param>
/// <param name="Candidates">Paraphrases to sample per text, 1-8 (before copies and duplicates are dropped).</param>
/// <param name="MaxNewTokens">Most tokens per candidate, 1-256.</param>
/// <param name="Temperature">0 is greedy (then one candidate is all there is), up to 2; below 1e-5 is greedy too.</param>
/// <param name="TopP">Nucleus sampling, (0, 1].</param>
/// <param name="TopK">Keep the K most likely tokens; 0 keeps all.</param>
/// <param name="RepetitionPenalty">Above 1 discourages repeating the input word for word, up to 2.</param>
/// <param name="Seed">Same seed, same candidates: any 64-bit integer; candidate i uses seed + i.</param>
/// <param name="Stream">Server-Sent Events: tokens per candidate as they come, then the full result.</param>
/// <param name="MaxChars">No candidate longer than this (1-65536 characters); a row stops decoding once it cannot fit.</param>
/// <param name="Keep">Up to 16 terms every candidate must contain, case-insensitively (brand names, keywords).</param>
/// <param name="Avoid">Up to 16 terms no candidate may contain: banned while decoding, however cased or split into tokens.</param>
/// <param name="MinSimilarity">No candidate whose meaning similarity with the input is below this, in [-1, 1].</param>
/// <param name="Speculation">False decodes one token per step (speculation changes the speed, never the candidates).</param>
/// <param name="UseDefaultAdapter">False: without <paramref name="Adapter"/>, the base model serves (its few-shot prompt),
/// even where a default adapter exists. A named adapter is used either way.</param>
/// <remarks>Unknown fields are refused (400 naming them), so a misspelt option is never silently ignored.</remarks>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ParaphraseRequest(
    string? Text = null,
    IReadOnlyList<string?>? Texts = null,
    string? Adapter = null,
    int Candidates = 3,
    int MaxNewTokens = 48,
    double Temperature = 0.8,
    double TopP = 0.95,
    int TopK = 0,
    double RepetitionPenalty = 1.0,
    long? Seed = null,
    bool Stream = false,
    int? MaxChars = null,
    IReadOnlyList<string?>? Keep = null,
    IReadOnlyList<string?>? Avoid = null,
    double? MinSimilarity = null,
    bool Speculation = true,
    bool UseDefaultAdapter = true);

/// <summary>The candidates kept for one input text, best first, and what became of the others.</summary>
/// <param name="Generated">Candidates the model generated for this text.</param>
/// <param name="Dropped">Empty ones, copies of the input, duplicates.</param>
/// <param name="Removed">Distinct candidates that failed a constraint (maxChars, avoid, keep, minSimilarity).</param>
/// <param name="Note">When no candidate survived, why, in words (not an error: the request itself was fine).</param>
public sealed record ParaphraseResult(string Input, IReadOnlyList<ScoredCandidate> Candidates, int Generated, DropCounts Dropped, RemovedCounts Removed,
    string? Note = null);

public sealed record ParaphraseUsage(int PromptTokens, int CompletionTokens);

public sealed record ParaphraseTimings(double QueueMilliseconds, double GenerationMilliseconds);

public sealed record ParaphraseResponse(
    string Model, string? Adapter, bool Demo, IReadOnlyList<ParaphraseResult> Results, ParaphraseUsage Usage, ParaphraseTimings Timings);

/// <summary>One streamed piece of text of one candidate of one input.</summary>
public sealed record ParaphraseToken(int Input, int Candidate, string Text);
