using System.ComponentModel.DataAnnotations;

namespace ParaphraseService.Api.Admin;

/// <summary>
/// The <c>Admin</c> configuration section. The admin endpoints require <see cref="ApiKey"/> in the
/// <see cref="Header"/> request header; with no key configured they are disabled and answer 503.
/// </summary>
public sealed class AdminOptions
{
    public const string Section = "Admin";

    /// <summary>The shared secret (environment: <c>Admin__ApiKey</c>); empty disables the admin endpoints.</summary>
    // RegularExpression lets null and "" through: those disable admin rather than being a weak key.
    [RegularExpression(@"^[\s\S]{16,}$", ErrorMessage = "Admin:ApiKey must be at least 16 characters (or empty to disable the admin endpoints).")]
    public string? ApiKey { get; set; }

    /// <summary>The request header that carries the key; default <c>X-Api-Key</c>.</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = "Admin:Header is required.")]
    [RegularExpression("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", ErrorMessage = "Admin:Header must be an HTTP header name.")]
    public string Header { get; set; } = "X-Api-Key";

    /// <summary>
    /// When set, admin endpoints answer only on this port (listen on it too, e.g. <c>--urls http://+:8080;http://+:8081</c>),
    /// so a firewall or Kubernetes Service can keep them internal.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(1, 65535)]
    public int? Port { get; set; }

    public bool Enabled => !string.IsNullOrEmpty(ApiKey);
}
