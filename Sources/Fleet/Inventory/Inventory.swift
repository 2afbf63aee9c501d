import Foundation
import SSHConfig

/// One environment's inventory: how to reach its hosts and what they are.
///
/// Loaded from `inventories/<environment>.yml` by ``InventoryLoader``; see `docs/inventory.md`.
public struct Inventory: Sendable, Hashable {
    /// Environment name, e.g. `production`.
    public var name: String
    /// The file this inventory was read from (for messages).
    public var sourcePath: String
    /// Connection settings shared by every host.
    public var ssh: SSHSettings
    /// Hosts worked on at once.
    public var parallelism: Int
    /// Whether changing tasks must be confirmed (or `--yes` given) before running.
    public var confirmChanges: Bool
    /// The nightly data-sync window and its marker file.
    public var dataSync: DataSyncSettings
    /// How services are managed on the hosts.
    public var services: ServiceSettings
    /// Settings for deploying goreplay, if the environment replays traffic.
    public var replay: ReplaySettings?
    /// Hosts in file order (hosts from `include_hosts` follow the inline ones).
    public var hosts: [FleetHost]
    /// Where the hosts come from: the file, or a live source queried per run.
    public var source: InventorySource = .file
    /// How long a live source's answer is reused (`cache_ttl`).
    public var cacheTTL: Duration = .seconds(300)

    /// Creates an inventory; defaults match `docs/inventory.md`.
    public init(
        name: String, sourcePath: String = "", ssh: SSHSettings = SSHSettings(),
        parallelism: Int = 20, confirmChanges: Bool = false,
        dataSync: DataSyncSettings = DataSyncSettings(), services: ServiceSettings = ServiceSettings(),
        replay: ReplaySettings? = nil, hosts: [FleetHost] = []
    ) {
        self.name = name
        self.sourcePath = sourcePath
        self.ssh = ssh
        self.parallelism = parallelism
        self.confirmChanges = confirmChanges
        self.dataSync = dataSync
        self.services = services
        self.replay = replay
        self.hosts = hosts
    }

    /// The host with this name (case-insensitive), or whose address is exactly `nameOrAddress`.
    public func host(named nameOrAddress: String) -> FleetHost? {
        let lowered = nameOrAddress.lowercased()
        return hosts.first { $0.name.lowercased() == lowered }
            ?? hosts.first { $0.address == nameOrAddress }
    }

    /// The SSH login user for `host`: its override, else the environment's, else `nil`
    /// (meaning the local login name, as OpenSSH and Fabric do).
    public func user(for host: FleetHost) -> String? { host.user ?? ssh.user }

    /// The SSH port for `host`: its override, else the environment's.
    public func port(for host: FleetHost) -> Int { host.port ?? ssh.port }

    /// The service manager on `host`: its override, else the environment's.
    public func serviceManager(for host: FleetHost) -> ServiceManager {
        host.serviceManager ?? services.manager
    }
}

/// A host in an inventory (or given ad hoc with `-H`).
public struct FleetHost: Sendable, Hashable, CustomStringConvertible {
    /// Short name used in output, e.g. `cache-1`.
    public var name: String
    /// What to connect to (DNS name or IP address); defaults to `name`.
    public var address: String
    /// SSH port override; `nil` uses the environment's port.
    public var port: Int?
    /// Puppet classes declared on the host, e.g. `gor`, `govuk::node::s_cache`.
    public var puppetClasses: [String]
    /// Node class (`govuk_node_list -c`), e.g. `cache`; defaults to the name without `-N`.
    public var nodeClass: String
    /// Node type (`govuk::node::s_<type>`), if known.
    public var nodeType: String?
    /// Service manager override.
    public var serviceManager: ServiceManager?
    /// SSH login user override.
    public var user: String?
    /// True for hosts named with `-H` that are not in the inventory.
    public var isAdHoc: Bool

    /// Creates a host; `address` defaults to `name` and `nodeClass` to ``FleetHost/defaultNodeClass(forName:)``.
    public init(
        name: String, address: String? = nil, port: Int? = nil, puppetClasses: [String] = [],
        nodeClass: String? = nil, nodeType: String? = nil, serviceManager: ServiceManager? = nil,
        user: String? = nil, isAdHoc: Bool = false
    ) {
        self.name = name
        self.address = address ?? name
        self.port = port
        self.puppetClasses = puppetClasses
        self.nodeClass = nodeClass ?? FleetHost.defaultNodeClass(forName: name)
        self.nodeType = nodeType
        self.serviceManager = serviceManager
        self.user = user
        self.isAdHoc = isAdHoc
    }

    /// `cache-1` → `cache`, `backend-3.backend` → `backend`: the first DNS label without a
    /// trailing `-<digits>`, as `govuk_node_list -c` matched hosts.
    public static func defaultNodeClass(forName name: String) -> String {
        let label = name.split(separator: ".", maxSplits: 1).first.map(String.init) ?? name
        if let dash = label.lastIndex(of: "-"),
            label.index(after: dash) < label.endIndex,
            label[label.index(after: dash)...].allSatisfy(\.isASCIIDigit)
        {
            return String(label[..<dash])
        }
        return label
    }

    public var description: String { name }
}

/// SSH connection settings for an environment.
public struct SSHSettings: Sendable, Hashable {
    /// Login user; `nil` means the local login name.
    public var user: String?
    /// Port for every host unless overridden.
    public var port: Int
    /// Private key files to try, in order. `~` is left for the caller to expand.
    public var identityFiles: [String]
    /// known_hosts files checked for every hop. `~` is left for the caller to expand.
    public var knownHosts: [String]
    /// Jump hosts, outermost first; empty means connect directly.
    public var gateway: [GatewayHop]
    /// Limit for connecting (per hop) and authenticating.
    public var connectTimeout: Duration
    /// Limit for one remote command, if any.
    public var commandTimeout: Duration?
    /// ssh_config's `ServerAliveInterval`: a keepalive after this long without a byte from a host or
    /// gateway. With `keepaliveCountMax` it bounds how long a dead link can hang a run (15 s × 4 = 60 s).
    public var keepaliveInterval: Duration = .seconds(15)
    /// ssh_config's `ServerAliveCountMax`: unanswered keepalives before the connection counts as lost.
    public var keepaliveCountMax: Int = 3
    /// The `ssh:` keys the inventory file gave (e.g. `port`), so that ssh_config
    /// can fill in only what the inventory left to defaults.
    public var explicitKeys: Set<String> = []

    /// Creates settings; defaults match `docs/inventory.md`.
    public init(
        user: String? = nil, port: Int = 22, identityFiles: [String] = [], knownHosts: [String] = [],
        gateway: [GatewayHop] = [], connectTimeout: Duration = .seconds(10), commandTimeout: Duration? = nil
    ) {
        self.user = user
        self.port = port
        self.identityFiles = identityFiles
        self.knownHosts = knownHosts
        self.gateway = gateway
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }
}

/// One jump host: `[user@]host[:port]` — the same value ssh_config's `ProxyJump` gives.
public typealias GatewayHop = JumpSpec

extension JumpSpec {
    /// Parses `[user@]host[:port]` (`[v6addr]:port` for IPv6) with the same rules as ssh_config's
    /// `ProxyJump` (`JumpSpec`); a failure carries the reason.
    public static func parse(_ text: String) -> Result<GatewayHop, HostSpecError> {
        let spec: JumpSpec
        do {
            spec = try JumpSpec(parsing: text)
        } catch {
            return .failure(HostSpecError(text: text, reason: error.reason))
        }
        guard spec.host.allSatisfy({ $0.isLetter || $0.isNumber || "-._:".contains($0) }) else {
            return .failure(HostSpecError(text: text, reason: "'\(spec.host)' is not a host name or address"))
        }
        return .success(GatewayHop(user: spec.user, host: spec.host, port: spec.port))
    }
}

/// Why a `[user@]host[:port]` string could not be parsed.
public struct HostSpecError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text given.
    public var text: String
    /// What is wrong with it.
    public var reason: String
    public var description: String { "'\(text)': \(reason)" }
}

/// The nightly data-sync window and the marker file that stops goreplay during it.
public struct DataSyncSettings: Sendable, Hashable {
    /// When data syncs run (GOV.UK: 23:00–05:30 Europe/London).
    public var window: DataSyncWindow
    /// The file whose presence keeps Puppet from starting goreplay.
    public var marker: String

    /// The default marker path used by govuk-puppet.
    public static let defaultMarker = "/etc/govuk/env.d/FACTER_data_sync_in_progress"

    /// Creates settings; defaults to 23:00–05:30 Europe/London and ``defaultMarker``.
    public init(window: DataSyncWindow = .govukDefault, marker: String = DataSyncSettings.defaultMarker) {
        self.window = window
        self.marker = marker
    }
}

/// How hosts start and stop services.
public enum ServiceManager: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// `systemctl start NAME`.
    case systemd
    /// `initctl start NAME` (GOV.UK's Ubuntu trusty hosts).
    case upstart
    /// `/etc/init.d/NAME start` or `service NAME start`.
    case sysv
    /// `supervisorctl start NAME` (the test fleet).
    case supervisor

    public var description: String { rawValue }
}

/// Service manager and name aliases for an environment.
public struct ServiceSettings: Sendable, Hashable {
    /// Default service manager.
    public var manager: ServiceManager
    /// Logical service name → names to try on hosts, in order (e.g. `goreplay: [goreplay, gor]`).
    public var aliases: [String: [String]]

    /// Creates settings; defaults to systemd with no aliases.
    public init(manager: ServiceManager = .systemd, aliases: [String: [String]] = [:]) {
        self.manager = manager
        self.aliases = aliases
    }

    /// The service names to try for `logicalName`: its aliases, or the name itself.
    public func candidates(for logicalName: String) -> [String] {
        aliases[logicalName] ?? [logicalName]
    }
}

/// How goreplay is deployed in an environment.
public struct ReplaySettings: Sendable, Hashable {
    /// Where the binary is installed on hosts.
    public var binaryPath: String
    /// Service name that runs it.
    public var service: String
    /// Arguments per puppet class or host name.
    public var arguments: [String: ReplayArguments]
    /// `fan_in`: capture hosts forward to one replay host instead of replaying.
    public var fanIn: ReplayFanIn?

    /// Default install path, as in govuk_gor.
    public static let defaultBinaryPath = "/usr/local/bin/goreplay"

    /// Creates settings.
    public init(
        binaryPath: String = ReplaySettings.defaultBinaryPath, service: String = "goreplay",
        arguments: [String: ReplayArguments] = [:]
    ) {
        self.binaryPath = binaryPath
        self.service = service
        self.arguments = arguments
    }

    /// Arguments for `host`: an entry for its name wins, then the first of its puppet
    /// classes (in the host's order) that has an entry; matching is case-insensitive.
    public func arguments(for host: FleetHost) -> ReplayArguments? {
        let byLoweredKey = Dictionary(
            arguments.map { ($0.key.lowercased(), $0.value) },
            uniquingKeysWith: { first, _ in first })
        if let own = byLoweredKey[host.name.lowercased()] { return own }
        for puppetClass in host.puppetClasses {
            if let entry = byLoweredKey[puppetClass.lowercased()] { return entry }
        }
        return nil
    }
}

/// goreplay arguments for one class of hosts.
public struct ReplayArguments: Sendable, Hashable {
    /// Capture address, e.g. `127.0.0.1:7999` (`--input-raw`).
    public var capture: String
    /// Replay target URLs (`--output-http`).
    public var targets: [String]
    /// HTTP methods to replay (`--http-allow-method`); empty means all.
    public var allowMethods: [String]
    /// Further arguments passed as given.
    public var extraArgs: [String]

    /// In `capture`, replaced by the host's own address when the service is written.
    public static let addressPlaceholder = "{address}"

    /// The capture address for `host`, with `{address}` filled in.
    public func capture(for host: FleetHost) -> String {
        capture.replacingOccurrences(of: Self.addressPlaceholder, with: host.address)
    }

    /// Creates arguments.
    public init(capture: String, targets: [String], allowMethods: [String] = [], extraArgs: [String] = []) {
        self.capture = capture
        self.targets = targets
        self.allowMethods = allowMethods
        self.extraArgs = extraArgs
    }
}

/// Where an environment's hosts come from (`source:`).
public enum InventorySource: Sendable, Hashable {
    /// The hosts listed in the inventory file (`source: static`, the default).
    case file
    /// A command run on the first gateway hop that prints one host per line, given `-C CLASS` for
    /// `puppet_class:`, `-c CLASS` for `class:` and nothing for `all` (`govuk_node_list`).
    case gatewayCommand(String)
    /// PuppetDB's v4 query API: nodes whose catalogue declares a class.
    case puppetDB(PuppetDBSource)
}

/// Where PuppetDB answers, and the TLS files for an https URL.
public struct PuppetDBSource: Sendable, Hashable {
    /// e.g. `https://puppetdb.example:8081` or `http://127.0.0.1:8080`.
    public var url: String
    public var caCertificate: String?
    public var clientCertificate: String?
    public var clientKey: String?

    public init(url: String, caCertificate: String? = nil, clientCertificate: String? = nil, clientKey: String? = nil) {
        self.url = url
        self.caCertificate = caCertificate
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
    }
}
