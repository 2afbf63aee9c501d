/// One hop of a jump chain: `[user@]host[:port]`, `[user@][v6addr][:port]` or
/// `ssh://[user@]host[:port]`, as written in `ProxyJump` or an inventory's `gateway:`.
public struct JumpSpec: Sendable, Hashable, CustomStringConvertible {
    /// Login name for the hop; `nil` means "whatever the caller's default is".
    public var user: String?
    /// Host name or address (IPv6 without brackets).
    public var host: String
    /// TCP port; `nil` means "the caller's default" (22, or ssh_config's `Port` for that hop).
    public var port: Int?

    public init(user: String? = nil, host: String, port: Int? = nil) {
        self.user = user
        self.host = host
        self.port = port
    }

    /// Parses one hop. Throws `JumpSpecError` with the offending text on anything ambiguous.
    public init(parsing text: String) throws(JumpSpecError) {
        var rest = Substring(text)
        if rest.isEmpty || rest.contains(where: { $0 == " " || $0 == "\t" || $0 == "," }) {
            throw JumpSpecError(text: text, reason: "expected [user@]host[:port]")
        }
        if rest.hasPrefix("ssh://") {
            rest = rest.dropFirst("ssh://".count)
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            if rest.contains("/") {
                throw JumpSpecError(text: text, reason: "an ssh:// jump host cannot have a path")
            }
        }
        // The user is everything up to the last '@', as OpenSSH does ("a@b@host" is user "a@b").
        var user: String?
        if let at = rest.lastIndex(of: "@") {
            let name = rest[..<at]
            if name.isEmpty { throw JumpSpecError(text: text, reason: "empty user name before '@'") }
            user = String(name)
            rest = rest[rest.index(after: at)...]
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw JumpSpecError(text: text, reason: "missing ']' after IPv6 address")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw JumpSpecError(text: text, reason: "unexpected text after ']'")
                }
                portText = after.dropFirst()
            }
        } else {
            let colons = rest.filter { $0 == ":" }.count
            if colons > 1 {
                throw JumpSpecError(text: text, reason: "IPv6 addresses must be written in brackets, e.g. [::1]:22")
            }
            if let colon = rest.firstIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            } else {
                host = rest
            }
        }
        if host.isEmpty { throw JumpSpecError(text: text, reason: "empty host name") }
        // `[[q]:22` gave host "[q", which names nothing and did not read back from `description` (found by fuzzing).
        if host.contains(where: { $0 == "[" || $0 == "]" }) {
            throw JumpSpecError(text: text, reason: "'[' and ']' may only enclose an IPv6 address")
        }
        var port: Int?
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw JumpSpecError(text: text, reason: "port must be a number from 1 to 65535")
            }
            port = value
        }
        self.init(user: user, host: String(host), port: port)
    }

    /// Parses a `ProxyJump` value: a comma-separated chain, first hop first, or `none`
    /// (returned as an empty chain, meaning "connect directly").
    public static func parseChain(_ text: String) throws(JumpSpecError) -> [JumpSpec] {
        if text.lowercased() == "none" { return [] }
        var chain: [JumpSpec] = []
        for hop in text.split(separator: ",", omittingEmptySubsequences: false) {
            if hop.lowercased() == "none" {
                throw JumpSpecError(text: text, reason: "'none' cannot be part of a chain")
            }
            chain.append(try JumpSpec(parsing: String(hop)))
        }
        return chain
    }

    public var description: String {
        var out = ""
        if let user { out += "\(user)@" }
        let bracketed = host.contains(":")
        out += bracketed ? "[\(host)]" : host
        if let port { out += ":\(port)" }
        return out
    }
}

/// A jump host specification that could not be parsed.
public struct JumpSpecError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text as given.
    public var text: String
    /// What is wrong with it.
    public var reason: String

    public var description: String { "bad jump host '\(text)': \(reason)" }
}
