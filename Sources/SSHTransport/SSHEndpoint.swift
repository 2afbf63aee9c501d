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
