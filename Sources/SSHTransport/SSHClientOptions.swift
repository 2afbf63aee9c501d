/// How sessions connect, verify host keys and authenticate.
public struct SSHClientOptions: Sendable {
    /// Covers TCP connect, SSH banner and key exchange, host-key check and authentication together.
    public var connectTimeout: Duration = .seconds(10)
    /// OpenSSH's `ServerAliveInterval`: after this long without hearing from the server, send a
    /// keepalive that wants a reply; nil disables them (a dead link then hangs until a timeout).
    public var keepaliveInterval: Duration? = .seconds(15)
    /// OpenSSH's `ServerAliveCountMax`: the connection is lost once this many keepalives in a row go
    /// unanswered, i.e. after interval × (count + 1) of silence (15 s × 3: 60 s).
    public var keepaliveCountMax: Int = 3
    /// Try keys held by ssh-agent first.
    public var useAgent: Bool = true
    /// The agent's socket; nil means `$SSH_AUTH_SOCK`.
    public var agentSocketPath: String? = nil
    /// Private key files (OpenSSH format, ed25519 or ECDSA) tried after the agent; `~` is expanded.
    public var identityFiles: [String] = []
    /// OpenSSH known_hosts files; hosts must be listed in one of them. `~` is expanded; missing files are skipped.
    public var knownHostsFiles: [String] = ["~/.ssh/known_hosts"]
    /// Most logins one gateway hop may hold to carry tunnels. libssh2 1.10 has one channel open in
    /// flight per session, so one login opens one tunnel per round trip; more logins are added only
    /// while opens queue up (never for a handful of hosts). Keep it under the jump host's
    /// `MaxStartups` (10 by default).
    public var gatewayConnections: Int = 8

    public init(
        connectTimeout: Duration = .seconds(10),
        keepaliveInterval: Duration? = .seconds(15),
        useAgent: Bool = true,
        agentSocketPath: String? = nil,
        identityFiles: [String] = [],
        knownHostsFiles: [String] = ["~/.ssh/known_hosts"],
        keepaliveCountMax: Int = 3
    ) {
        self.keepaliveCountMax = keepaliveCountMax
        self.connectTimeout = connectTimeout
        self.keepaliveInterval = keepaliveInterval
        self.useAgent = useAgent
        self.agentSocketPath = agentSocketPath
        self.identityFiles = identityFiles
        self.knownHostsFiles = knownHostsFiles
    }
}
