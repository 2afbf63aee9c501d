/// `StrictHostKeyChecking` as ssh_config spells it. `off` and `false` read as `.no`,
/// `true` as `.yes`, as in OpenSSH.
public enum StrictHostKeyChecking: String, Sendable, Hashable, CaseIterable {
    case yes
    case no
    case ask
    case acceptNew = "accept-new"

    init?(configValue: String) {
        switch configValue.lowercased() {
        case "yes", "true": self = .yes
        case "no", "off", "false": self = .no
        case "ask": self = .ask
        case "accept-new": self = .acceptNew
        default: return nil
        }
    }

    /// True when this setting would let an unknown or changed host key through without
    /// the user confirming it. govuk-fab must not honour such a value from ssh_config
    /// unless the user asked for it explicitly (see docs/ssh-config.md).
    public var acceptsUnverifiedKeys: Bool { self == .no || self == .acceptNew }
}

/// What ssh_config says about one destination, after OpenSSH's first-obtained-value rule.
///
/// Optional fields are `nil` when no matching block set them, so a caller can layer
/// command-line options and the inventory on top and fall back to its own defaults.
public struct ResolvedSSHConfig: Sendable, Equatable {
    /// The destination as given to `resolve` (the alias matched against `Host` lines).
    public var host: String
    /// `HostName` with `%h` expanded, lowercased; the lowercased alias if not configured.
    public var hostName: String
    /// The user passed to `resolve` if any, else `User`.
    public var user: String?
    public var port: Int?
    /// Every matching `IdentityFile`, in file order, with `~` and `%` tokens expanded.
    public var identityFiles: [String]
    public var identitiesOnly: Bool?
    /// `nil`: no `ProxyJump`; empty: `ProxyJump none` (connect directly); else first hop first.
    public var proxyJump: [JumpSpec]?
    /// `nil` also for `ConnectTimeout none`.
    public var connectTimeout: Duration?
    /// `UserKnownHostsFile` entries, with `~` and `%` tokens expanded.
    public var userKnownHostsFiles: [String]?
    /// As written in ssh_config; the caller decides whether it may weaken its own policy.
    public var strictHostKeyChecking: StrictHostKeyChecking?
    public var serverAliveInterval: Duration?
    public var serverAliveCountMax: Int?
    /// Keywords govuk-fab does not act on, lowercased, with their first value (arguments joined
    /// by a space), e.g. `["proxycommand": "nc %h %p"]`.
    public var otherOptions: [String: String]

    public init(
        host: String, hostName: String, user: String? = nil, port: Int? = nil,
        identityFiles: [String] = [], identitiesOnly: Bool? = nil, proxyJump: [JumpSpec]? = nil,
        connectTimeout: Duration? = nil, userKnownHostsFiles: [String]? = nil,
        strictHostKeyChecking: StrictHostKeyChecking? = nil, serverAliveInterval: Duration? = nil,
        serverAliveCountMax: Int? = nil, otherOptions: [String: String] = [:]
    ) {
        self.host = host
        self.hostName = hostName
        self.user = user
        self.port = port
        self.identityFiles = identityFiles
        self.identitiesOnly = identitiesOnly
        self.proxyJump = proxyJump
        self.connectTimeout = connectTimeout
        self.userKnownHostsFiles = userKnownHostsFiles
        self.strictHostKeyChecking = strictHostKeyChecking
        self.serverAliveInterval = serverAliveInterval
        self.serverAliveCountMax = serverAliveCountMax
        self.otherOptions = otherOptions
    }
}
