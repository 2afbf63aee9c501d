import Foundation

/// Where to connect and as whom.
public struct SSHEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// A hostname, IPv4 or IPv6 address (IPv6 without brackets).
    public var host: String
    public var port: Int
    public var user: String

    public init(host: String, port: Int = 22, user: String) {
        self.host = host
        self.port = port
        self.user = user
    }

    /// `user@host:port`, with brackets around IPv6 addresses.
    public var description: String { "\(user)@\(hostAndPort)" }

    /// `host:port`, or `[v6addr]:port`.
    public var hostAndPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

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

/// A piece of a remote command's output, delivered as it arrives.
public struct OutputChunk: Sendable {
    /// Which of the command's output streams the bytes came from.
    public enum Stream: Sendable, Hashable {
        case stdout, stderr
    }

    public let stream: Stream
    public let bytes: [UInt8]

    public init(stream: Stream, bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// How a remote command ended.
public struct CommandResult: Sendable, Hashable {
    /// The exit status; 0 when the command was killed by a signal; -1 if the channel was closed
    /// locally before the server reported one (local timeout).
    public let exitStatus: Int32
    /// The signal name without "SIG" (e.g. "TERM") if the command was killed by a signal.
    public let exitSignal: String?
    /// The command ran past its timeout and was stopped.
    public let timedOut: Bool
    /// Wall time from channel open to channel close.
    public let duration: Duration

    public init(exitStatus: Int32, exitSignal: String?, timedOut: Bool, duration: Duration) {
        self.exitStatus = exitStatus
        self.exitSignal = exitSignal
        self.timedOut = timedOut
        self.duration = duration
    }

    /// Exit status 0, no signal, not timed out.
    public var succeeded: Bool { exitStatus == 0 && exitSignal == nil && !timedOut }
}

/// Single-quotes `s` as one word for a POSIX shell: `it's` becomes `'it'\''s'`.
public func shellQuote(_ s: String) -> String {
    "'" + s.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
}
