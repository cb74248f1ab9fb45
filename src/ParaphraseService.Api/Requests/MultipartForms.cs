using Microsoft.AspNetCore.Http.Features;

namespace ParaphraseService.Api.Requests;

/// <summary>Reads a multipart/form-data body, one rule for every endpoint that takes files.</summary>
public static class MultipartForms
{
    /// <summary>
    /// The form, buffered. A body that says multipart but is not one (no closing boundary, garbage, cut short) makes
    /// ASP.NET Core throw an <see cref="IOException"/> ("Unexpected end of Stream") as well as
    /// <see cref="InvalidDataException"/>; both come out as <see cref="InvalidDataException"/>, which callers answer
    /// with 400 (or 413 for a length limit). A client that went away stays a cancellation.
    /// </summary>
    public static async Task<IFormCollection> ReadAsync(HttpRequest request, FormOptions options, CancellationToken cancellationToken)
    {
        try
        {
            return await request.ReadFormAsync(options, cancellationToken);
        }
        catch (IOException e) when (e is not BadHttpRequestException && !cancellationToken.IsCancellationRequested)
        {
            throw new InvalidDataException(e.Message.Trim(), e);
        }
    }
}
