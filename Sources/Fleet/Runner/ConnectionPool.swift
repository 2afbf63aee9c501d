import Foundation
import Logging
import SSHTransport

/// One SSH session per host for the whole run (as Fabric 1 cached its
/// connections), opened on first use and shared by the run's tasks.
actor ConnectionPool {
    private let reactor: SSHReactor
    private let inventory: Inventory
    private let options: SSHClientOptions
    private let logger: Logger
    private var sessions: [String: Task<SSHSession, any Error>] = [:]

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
            connecting = Task {
                try await SSHSession.connect(to: endpoint, options: options, reactor: reactor, logger: logger)
            }
            sessions[host.name] = connecting
        }
        return try await withTaskCancellationHandler {
            try await connecting.value
        } onCancel: {
            connecting.cancel()
        }
    }

    func closeAll() async {
        let all = sessions.values
        sessions.removeAll()
        await withTaskGroup(of: Void.self) { group in
            for connecting in all {
                group.addTask { if let session = try? await connecting.value { await session.close() } }
            }
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
