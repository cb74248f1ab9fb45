using Microsoft.Extensions.Options;

namespace ParaphraseService.Api.Storage;

/// <summary>
/// The <c>Node</c> configuration section: what this process does in a cluster. <c>both</c> (the default) is one
/// process serving requests and training fine-tunes, as without a cluster; <c>serve</c> never claims a job nor holds
/// training matrices; <c>train</c> claims jobs and answers only health and metrics unless
/// <see cref="ServeRequests"/> is set.
/// </summary>
public sealed class NodeOptions
{
    public const string Section = "Node";

    /// <summary>serve, train or both.</summary>
    public string Roles { get; set; } = "both";

    /// <summary>This node's name in the job table (who holds a lease); default: the host name and process id.</summary>
    public string? Id { get; set; }

    /// <summary>A train-only node also serves paraphrase requests and the admin API.</summary>
    public bool ServeRequests { get; set; }

    public bool Serves => Roles.Trim().ToLowerInvariant() is "serve" or "both";

    public bool Trains => Roles.Trim().ToLowerInvariant() is "train" or "both";

    /// <summary>Whether this node answers requests other than health and metrics.</summary>
    public bool AnswersRequests => Serves || ServeRequests;

    public string NodeId => string.IsNullOrWhiteSpace(Id) ? s_defaultId : Id.Trim();

    private static readonly string s_defaultId = $"{Environment.MachineName}-{Environment.ProcessId}";
}

/// <summary>Refuses at start an unknown role, or a split of roles without a shared store to split them over.</summary>
internal sealed class NodeOptionsValidation(IOptions<StorageOptions> storage) : IValidateOptions<NodeOptions>
{
    public ValidateOptionsResult Validate(string? name, NodeOptions options)
    {
        var problems = new List<string>();
        var roles = options.Roles?.Trim().ToLowerInvariant();
        if (roles is not ("serve" or "train" or "both"))
            problems.Add($"Node:Roles is '{options.Roles}'; use serve, train or both.");
        else if (roles != "both" && !storage.Value.IsCluster)
            problems.Add($"Node:Roles is '{roles}', which needs a store shared with the other nodes: set Storage:PostgreSql " +
                "(without it one process serves and trains: Node:Roles=both).");
        if (options.Id is { } id && (id.Trim().Length is 0 or > 200 || id.Any(char.IsControl)))
            problems.Add("Node:Id must be 1-200 characters without control characters.");
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
