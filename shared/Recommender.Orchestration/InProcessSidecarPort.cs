using System.Net;
using System.Net.Sockets;

namespace Recommender.Orchestration;

/// <summary>
/// The port for the Durable Task in-process host's gRPC sidecar (the local host and the tests). Left unset, the host
/// draws one at random from 30000-40000, which overlaps Linux's ephemeral range (32768-60999): an outgoing connection
/// (to Azurite, say) or a sibling host of a parallel test can hold it, and the host then fails to start with "address
/// already in use". A port the kernel hands out for a loopback bind is free at that moment.
/// </summary>
public static class InProcessSidecarPort
{
    public static int Free()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
