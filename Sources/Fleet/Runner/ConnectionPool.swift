import Foundation
import Logging
import SSHTransport

/// One SSH session per host for the whole run (as Fabric 1 cached its
/// connections), opened on first use and shared by the run's tasks.
///
/// Hosts behind the environment's `gateway:` chain share one ``SSHGateway``
/// per distinct chain: one login on each jump host per run, not one per host.
actor ConnectionPool {
    private let reactor: SSHReactor
    private let inventory: Inventory
    private let options: SSHClientOptions
    private let logger: Logger
    private var sessions: [String: Task<SSHSession, any Error>] = [:]
    private var gateways: [[SSHEndpoint]: Task<SSHGateway, any Error>] = [:]

    init(reactor: SSHReactor, inventory: Inventory, options: SSHClientOptions, logger: Logger) {
        self.reactor = reactor
        self.inventory = inventory
        self.options = options
        self.logger = logger
    }

    /// The host's session; a host that failed to connect fails the same way
    /// again without a second attempt.
    func session(for host: Host) async throws -> SSHSession {
        let connecting: Task<SSHSession, any Error>
        if let existing = sessions[host.name] {
            connecting = existing
        } else {
            let endpoint = Self.endpoint(for: host, in: inventory)
            let options = self.options
            let reactor = self.reactor
            let logger = self.logger
            let chain = Self.gatewayChain(in: inventory)
            let gatewayTask = chain.isEmpty ? nil : gateway(for: chain)
            let hostName = host.name
            connecting = Task {
                var gateway: SSHGateway?
                if let gatewayTask {
                    do {
                        gateway = try await gatewayTask.value
                    } catch let error as SSHError {
                        throw error.asGatewayError(for: hostName)
                    }
                }
                return try await SSHSession.connect(
                    to: endpoint, options: options, reactor: reactor, logger: logger, via: gateway)
            }
            sessions[host.name] = connecting
        }
        return try await withTaskCancellationHandler {
            try await connecting.value
        } onCancel: {
            connecting.cancel()
        }
    }

    /// The run's gateway for `chain`, connecting it on first use; a chain that
    /// failed fails every host behind it the same way, without a new attempt.
    private func gateway(for chain: [SSHEndpoint]) -> Task<SSHGateway, any Error> {
        if let existing = gateways[chain] { return existing }
        let options = self.options
        let reactor = self.reactor
        let logger = self.logger
        let connecting = Task {
            try await SSHGateway.connect(chain: chain, options: options, reactor: reactor, logger: logger)
        }
        gateways[chain] = connecting
        return connecting
    }

    /// Closes every session, then the gateways they ran through.
    func closeAll() async {
        let all = sessions.values
        sessions.removeAll()
        await withTaskGroup(of: Void.self) { group in
            for connecting in all {
                group.addTask { if let session = try? await connecting.value { await session.close() } }
            }
        }
        let chains = gateways.values
        gateways.removeAll()
        for connecting in chains {
            if let gateway = try? await connecting.value { await gateway.close() }
        }
    }

    /// The environment's jump hosts as endpoints, outermost first; a hop
    /// without its own user logs in as the environment's user.
    static func gatewayChain(in inventory: Inventory) -> [SSHEndpoint] {
        let defaultUser = inventory.ssh.user ?? ProcessInfo.processInfo.environment["USER"] ?? "root"
        return inventory.ssh.gateway.map { hop in
            SSHEndpoint(host: hop.host, port: hop.port ?? 22, user: hop.user ?? defaultUser)
        }
    }

    static func endpoint(for host: Host, in inventory: Inventory) -> SSHEndpoint {
        let user = inventory.user(for: host) ?? ProcessInfo.processInfo.environment["USER"] ?? "root"
        return SSHEndpoint(host: host.address, port: inventory.port(for: host), user: user)
    }
}

extension SSHClientOptions {
    /// Connection settings from an inventory, with `~` expanded.
    public static func from(_ inventory: Inventory, connectTimeout: Duration? = nil) -> SSHClientOptions {
        var options = SSHClientOptions()
        options.connectTimeout = connectTimeout ?? inventory.ssh.connectTimeout
        options.identityFiles = inventory.ssh.identityFiles.map(expandTilde)
        if !inventory.ssh.knownHosts.isEmpty {
            options.knownHostsFiles = inventory.ssh.knownHosts.map(expandTilde)
        } else {
            options.knownHostsFiles = [expandTilde("~/.ssh/known_hosts")]
        }
        return options
    }
}

/// `~/x` → `$HOME/x`.
public func expandTilde(_ path: String) -> String {
    guard path == "~" || path.hasPrefix("~/") else { return path }
    let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
    return home + path.dropFirst()
}
