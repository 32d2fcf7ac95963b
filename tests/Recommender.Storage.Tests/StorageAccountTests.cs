using Azure.Core;
using Recommender.Storage;

namespace Recommender.Storage.Tests;

[Trait("Kind", "Unit")]
public sealed class StorageAccountTests
{
    private sealed class NoToken : TokenCredential
    {
        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken) => throw new NotSupportedException();
        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) => throw new NotSupportedException();
    }

    [Theory]
    [InlineData("UseDevelopmentStorage=true", "http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10002/devstoreaccount1")]
    [InlineData("recstore", "https://recstore.blob.core.windows.net/", "https://recstore.table.core.windows.net/")]
    [InlineData("https://recstore.blob.core.windows.net", "https://recstore.blob.core.windows.net/", "https://recstore.table.core.windows.net/")]
    public void A_connection_string_account_name_or_blob_endpoint_names_both_services(string storage, string blobs, string tables)
    {
        var account = StorageAccount.Connect(storage, new NoToken());
        Assert.Equal(blobs, account.Blobs.Uri.AbsoluteUri.TrimEnd('/') + (blobs.EndsWith('/') ? "/" : ""));
        Assert.Equal(tables, account.Tables.Uri.AbsoluteUri.TrimEnd('/') + (tables.EndsWith('/') ? "/" : ""));
    }

    [Fact]
    public void The_functions_setting_is_the_connection_string_or_the_identity_based_account_name()
    {
        Assert.Equal("UseDevelopmentStorage=true", StorageAccount.FromFunctionsSetting(k => k == "AzureWebJobsStorage" ? "UseDevelopmentStorage=true" : null));
        Assert.Equal("recstore", StorageAccount.FromFunctionsSetting(k => k == "AzureWebJobsStorage:accountName" ? "recstore" : null));
        Assert.Throws<InvalidOperationException>(() => StorageAccount.FromFunctionsSetting(_ => null));
    }
}
