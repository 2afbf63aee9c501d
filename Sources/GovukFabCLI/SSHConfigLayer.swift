import Fleet
import Foundation
import SSHConfig
import SSHTransport

/// Puts ssh_config under the inventory when deciding how to reach a host:
/// command line > inventory > ssh_config > built-in defaults, per setting
/// (docs/ssh-config.md, "Precedence").
struct SSHConfigLayer: Sendable {
    let config: SSHConfigFile
    let inventory: Inventory
    /// Options from the command line and the inventory (identity files, known_hosts, timeouts).
    let base: SSHClientOptions
    /// `-t`/`--connect-timeout`, which beats everything.
    let commandLineConnectTimeout: Duration?
    /// False with `-k`: ssh_config's IdentityFile lines are not used either.
    var usesConfigIdentityFiles = true
    /// `--keepalive` was given, so ServerAliveInterval does not replace it.
    var commandLineKeepalive = false
    /// The login where nothing else names one (``LocalEnvironment/user``, as ssh's).
    var localUser: String

    init(
        config: SSHConfigFile, inventory: Inventory, base: SSHClientOptions, commandLineConnectTimeout: Duration?,
        localUser: String
    ) {
        self.config = config
        self.inventory = inventory
        self.base = base
        self.commandLineConnectTimeout = commandLineConnectTimeout
        self.localUser = localUser
    }

    /// `--system-known-hosts` adds this file; it stays when ssh_config sets UserKnownHostsFile.
    static let systemKnownHostsFile = "/etc/ssh/ssh_known_hosts"

    /// `--ssh-config-path FILE` (`none`: no file), else `~/.ssh/config` if it exists.
    static func load(path: String?, local: LocalEnvironment) throws(SSHConfigError) -> SSHConfigFile? {
        let environment = local.sshConfig
        if let path {
            // `/dev/null` is OpenSSH users' other spelling of "no file".
            return path == "none" || path == "/dev/null"
                ? nil : try SSHConfigFile.load(path: path, environment: environment)
        }
        guard FileManager.default.fileExists(atPath: environment.homeDirectory + "/.ssh/config") else { return nil }
        return try SSHConfigFile.loadUserConfig(environment: environment)
    }

    private func has(_ key: String) -> Bool { inventory.ssh.explicitKeys.contains(key) }

    /// ssh_config for the host's inventory name, or for its address when no
    /// block set anything for the name.
    func resolved(for host: FleetHost, user: String?) -> ResolvedSSHConfig {
        let byName = config.resolve(host: host.name, user: user)
        let nothing = ResolvedSSHConfig(host: host.name, hostName: host.name.lowercased(), user: user)
        guard byName == nothing, host.address != host.name else { return byName }
        return config.resolve(host: host.address, user: user)
    }

    func connection(for host: FleetHost) -> HostConnection {
        let decidedUser = host.user ?? (has("user") ? inventory.ssh.user : nil)
        let resolved = resolved(for: host, user: decidedUser)
        let user = decidedUser ?? resolved.user ?? localUser
        // An inventory host without `address:` has its name as address.
        let address = host.address != host.name ? host.address : resolved.hostName
        let port = host.port ?? (has("port") ? inventory.ssh.port : nil) ?? resolved.port ?? 22

        var options = base
        options.connectTimeout =
            commandLineConnectTimeout
            ?? (has("connect_timeout") ? inventory.ssh.connectTimeout : nil) ?? resolved.connectTimeout ?? .seconds(10)
        for file in resolved.identityFiles where usesConfigIdentityFiles && !options.identityFiles.contains(file) {
            options.identityFiles.append(file)
        }
        // Agent keys are not limited to the files in libssh2's API, so IdentitiesOnly means "files only".
        if resolved.identitiesOnly == true && !options.identityFiles.isEmpty { options.useAgent = false }
        if !has("known_hosts"), let files = resolved.userKnownHostsFiles, !files.isEmpty {
            options.knownHostsFiles = files + base.knownHostsFiles.filter { $0 == SSHConfigLayer.systemKnownHostsFile }
        }
        if !commandLineKeepalive, !has("keepalive_interval"), let interval = resolved.serverAliveInterval {
            options.keepaliveInterval = interval
        }
        if !has("keepalive_count_max"), let count = resolved.serverAliveCountMax {
            options.keepaliveCountMax = max(1, count)
        }

        let hopUser = (has("user") ? inventory.ssh.user : nil) ?? localUser
        let gateway: [SSHEndpoint]
        if !inventory.ssh.gateway.isEmpty {
            gateway = inventory.ssh.gateway.map { hop in
                SSHEndpoint(host: hop.host, port: hop.port ?? 22, user: hop.user ?? hopUser)
            }
        } else {
            // Each jump host's own Host blocks give its HostName, User and Port, as in OpenSSH.
            gateway = (resolved.proxyJump ?? []).map { spec in
                let hop = config.resolve(host: spec.host, user: spec.user)
                return SSHEndpoint(
                    host: hop.hostName, port: spec.port ?? hop.port ?? 22, user: spec.user ?? hop.user ?? hopUser)
            }
        }
        return HostConnection(
            endpoint: SSHEndpoint(host: address, port: port, user: user), gateway: gateway, options: options)
    }

    /// Warnings for the operator: settings that would weaken host-key checking are ignored.
    func warnings(for hosts: [FleetHost]) -> [String] {
        var lines = config.warnings.map { "\($0)" }
        let weakened = hosts.filter { host in
            resolved(for: host, user: host.user ?? inventory.ssh.user).strictHostKeyChecking?.acceptsUnverifiedKeys
                == true
        }.map(\.name)
        if !weakened.isEmpty {
            let names =
                weakened.prefix(3).joined(separator: ", ")
                + (weakened.count > 3 ? " and \(weakened.count - 3) more" : "")
            lines.append(
                "\(config.path): StrictHostKeyChecking for \(names) is ignored: govuk-fab always checks host keys strictly"
            )
        }
        return lines
    }
}
