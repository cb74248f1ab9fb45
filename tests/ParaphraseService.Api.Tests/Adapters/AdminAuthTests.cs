using System.Net;
using System.Net.Http.Json;
using ParaphraseService.Api.Admin;

namespace ParaphraseService.Api.Tests.Adapters;

public class AdminAuthTests
{
    [Fact]
    public async Task WithoutTheKeyIs401AndWithAnotherKeyIs403AndNothingChanges()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("kept", AdapterFixtures.ZipFixture("q-v")))).JsonAsync(HttpStatusCode.Created);
        using var wrong = new HttpClient { BaseAddress = service.Client.BaseAddress };
        wrong.DefaultRequestHeaders.Add("X-Api-Key", AdapterServiceHost.AdminKey + "x");

        var none = await (await service.Client.PostAsync("/admin/adapters", AdapterFixtures.Form("new", AdapterFixtures.ZipFixture("q-v")))).AssertProblemAsync(HttpStatusCode.Unauthorized);
        Assert.Contains("X-Api-Key", none.Detail());
        await (await service.Client.DeleteAsync("/admin/adapters/kept")).AssertProblemAsync(HttpStatusCode.Unauthorized);
        await (await service.Client.PostAsJsonAsync("/admin/adapters", new { name = "new", path = AdapterFixtures.Peft("q-v") })).AssertProblemAsync(HttpStatusCode.Unauthorized);

        await (await wrong.PostAsync("/admin/adapters", AdapterFixtures.Form("new", AdapterFixtures.ZipFixture("q-v")))).AssertProblemAsync(HttpStatusCode.Forbidden);
        await (await wrong.DeleteAsync("/admin/adapters/kept")).AssertProblemAsync(HttpStatusCode.Forbidden);

        Assert.Equal(["kept"], service.StoreEntries());
        // The public endpoints need no key.
        Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/adapters/kept")).StatusCode);
    }

    [Fact]
    public async Task WithNoKeyConfiguredTheAdminEndpointsAreDisabled()
    {
        await using var service = await AdapterServiceHost.StartAsync(new() { ["Admin:ApiKey"] = "" });

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("q-v", AdapterFixtures.ZipFixture("q-v")))).AssertProblemAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Contains("Admin:ApiKey", problem.Detail());
        await (await service.Admin.DeleteAsync("/admin/adapters/q-v")).AssertProblemAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/adapters")).StatusCode);
    }

    [Fact]
    public async Task TheHeaderNameIsConfigurable()
    {
        await using var service = await AdapterServiceHost.StartAsync(new() { ["Admin:Header"] = "X-Admin-Token" });
        using var client = new HttpClient { BaseAddress = service.Client.BaseAddress };
        client.DefaultRequestHeaders.Add("X-Admin-Token", AdapterServiceHost.AdminKey);

        await (await service.Admin.DeleteAsync("/admin/adapters/none")).AssertProblemAsync(HttpStatusCode.Unauthorized);
        await (await client.DeleteAsync("/admin/adapters/none")).AssertProblemAsync(HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("the-admin-key-0123456789", "the-admin-key-0123456789", true)]
    [InlineData("the-admin-key-0123456789", "the-admin-key-012345678", false)]
    [InlineData("the-admin-key-0123456789", "THE-ADMIN-KEY-0123456789", false)]
    [InlineData("the-admin-key-0123456789", "", false)]
    public void KeysAreComparedExactly(string expected, string presented, bool equal) =>
        Assert.Equal(equal, ApiKeyEndpointFilter.KeysEqual(presented, expected));
}
