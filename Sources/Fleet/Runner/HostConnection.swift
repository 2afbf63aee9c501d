import Foundation
import SSHTransport

/// Where and how to reach one host: its endpoint, the jump hosts in front
/// of it (outermost first; empty: directly) and the client options.
public struct HostConnection: Sendable {
    public var endpoint: SSHEndpoint
    public var gateway: [SSHEndpoint]
    public var options: SSHClientOptions

    public init(endpoint: SSHEndpoint, gateway: [SSHEndpoint] = [], options: SSHClientOptions) {
        self.endpoint = endpoint
        self.gateway = gateway
        self.options = options
    }

    /// From the inventory alone: the host's address, user and port
    /// overrides, else the environment's, and the environment's gateway;
    /// `localUser` (``LocalEnvironment/user``) where the inventory names no user, as ssh does.
    public static func fromInventory(
        _ host: FleetHost, in inventory: Inventory, options: SSHClientOptions,
        localUser: String
    ) -> HostConnection {
        let defaultUser = inventory.ssh.user ?? localUser
        let endpoint = SSHEndpoint(
            host: host.address, port: inventory.port(for: host), user: inventory.user(for: host) ?? defaultUser)
        let gateway = inventory.ssh.gateway.map { hop in
            SSHEndpoint(host: hop.host, port: hop.port ?? 22, user: hop.user ?? defaultUser)
        }
        return HostConnection(endpoint: endpoint, gateway: gateway, options: options)
    }
}

/// Decides each host's ``HostConnection`` (the CLI layers ssh_config in).
public typealias HostConnectionResolver = @Sendable (FleetHost) -> HostConnection
