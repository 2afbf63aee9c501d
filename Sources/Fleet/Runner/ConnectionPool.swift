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
    private let resolve: HostConnectionResolver
    private let logger: Logger
    private var sessions: [String: Task<SSHSession, any Error>] = [:]
    private var gateways: [[SSHEndpoint]: Task<SSHGateway, any Error>] = [:]
    private var closing: [Task<Void, Never>] = []

    /// Connect attempts per host (`-n`); only connectivity failures are retried.
    private let attempts: Int

    init(reactor: SSHReactor, resolve: @escaping HostConnectionResolver, logger: Logger, attempts: Int = 1) {
        self.reactor = reactor
        self.resolve = resolve
        self.logger = logger
        self.attempts = max(1, attempts)
    }

    /// The host's session; a host that failed to connect fails the same way
    /// again without a second attempt.
    func session(for host: FleetHost) async throws -> SSHSession {
        let connecting: Task<SSHSession, any Error>
        if let existing = sessions[host.name] {
            connecting = existing
        } else {
            let plan = resolve(host)
            let endpoint = plan.endpoint
            let options = plan.options
            let reactor = self.reactor
            let logger = self.logger
            let gatewayTask = plan.gateway.isEmpty ? nil : gateway(for: plan.gateway, options: options)
            let hostName = host.name
            let attempts = self.attempts
            connecting = Task {
                var gateway: SSHGateway?
                if let gatewayTask {
                    do {
                        gateway = try await gatewayTask.value
                    } catch let error as SSHError {
                        throw error.asGatewayError(for: hostName)
                    }
                }
                var attempt = 1
                while true {
                    do {
                        return try await SSHSession.connect(
                            to: endpoint, options: options, reactor: reactor, logger: logger, via: gateway)
                    } catch let error as SSHError
                        where error.kind.isConnectivity && attempt < attempts && !Task.isCancelled
                    {
                        logger.info("connect attempt \(attempt) of \(attempts) to \(hostName) failed: \(error)")
                        attempt += 1
                        // A refused port answers at once; a pause gives a restarting sshd a chance.
                        try await Task.sleep(for: .seconds(1))
                    }
                }
            }
            sessions[host.name] = connecting
        }
        return try await withTaskCancellationHandler {
            try await connecting.value
        } onCancel: {
            connecting.cancel()
        }
    }

    /// The run's gateway for `chain`, connecting it on first use (with the
    /// options of the first host that needs it); a chain that failed fails
    /// every host behind it the same way, without a new attempt.
    private func gateway(for chain: [SSHEndpoint], options: SSHClientOptions) -> Task<SSHGateway, any Error> {
        if let existing = gateways[chain] { return existing }
        let reactor = self.reactor
        let logger = self.logger
        let connecting = Task {
            try await SSHGateway.connect(chain: chain, options: options, reactor: reactor, logger: logger)
        }
        gateways[chain] = connecting
        return connecting
    }

    /// Starts closing one host's session (it has nothing more to run) without holding up the caller;
    /// ``closeAll()`` waits for it. A later `session(for:)` would reconnect.
    func close(_ hostName: String) {
        guard let connecting = sessions.removeValue(forKey: hostName) else { return }
        closing.append(Task { if let session = try? await connecting.value { await session.close() } })
    }

    /// Closes every session, then the gateways they ran through.
    func closeAll() async {
        let all = sessions.values
        sessions.removeAll()
        let started = closing
        closing.removeAll()
        for task in started { await task.value }
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
}

extension SSHClientOptions {
    /// Connection settings from an inventory, with `~` expanded as `local`'s home.
    public static func from(
        _ inventory: Inventory, connectTimeout: Duration? = nil,
        local: LocalEnvironment = .current()
    ) -> SSHClientOptions {
        var options = SSHClientOptions()
        options.connectTimeout = connectTimeout ?? inventory.ssh.connectTimeout
        options.keepaliveInterval = inventory.ssh.keepaliveInterval
        options.keepaliveCountMax = inventory.ssh.keepaliveCountMax
        options.identityFiles = inventory.ssh.identityFiles.map(local.expandTilde)
        if !inventory.ssh.knownHosts.isEmpty {
            options.knownHostsFiles = inventory.ssh.knownHosts.map(local.expandTilde)
        } else {
            options.knownHostsFiles = [local.expandTilde("~/.ssh/known_hosts")]
        }
        return options
    }
}
