namespace ParaphraseService.Api.Adapters;

/// <summary>
/// <c>POST /admin/adapters</c> as JSON: publish a copy of an adapter folder that is already on the server.
/// </summary>
/// <param name="Path">An absolute path on the server to a PEFT adapter folder.</param>
/// <param name="Replace">Replace an adapter of the same name instead of answering 409.</param>
public sealed record RegisterAdapterRequest(string? Name, string? Path, bool Replace = false);
