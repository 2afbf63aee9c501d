import Foundation

/// Where `--output-http` sends requests, parsed from its URL.
///
/// Foundation's `URLComponents` does the parsing; this layer adds GoReplay's
/// quirks: a bare `host:port` means `http://host:port`, and `localhost` (or
/// no host at all) connects to 127.0.0.1.
public struct HTTPTarget: Sendable, Equatable {
    public var isTLS: Bool
    /// The address connected to (brackets stripped from an IPv6 literal).
    public var host: String
    public var port: Int
    /// `host[:port]` as written in the URL, for the Host header.
    public var hostHeader: String
    /// Path and query when the URL has them: it then replaces every
    /// request's target (GoReplay semantics).
    public var pathAndQuery: String?
    /// `Basic …` from URL user info.
    public var authorization: String?

    /// Parses `http://host[:port][/path]`, `https://…` or a bare `host:port`.
    public init(parsing text: String) throws(ConfigurationError) {
        // GoReplay prefixes `http://` to an address without a scheme.
        let url = text.contains("://") ? text : "http://" + text
        guard let components = URLComponents(string: url) else { throw Self.diagnose(text, url: url) }
        switch components.scheme?.lowercased() {
        case "http": isTLS = false
        case "https": isTLS = true
        default: throw .malformedRule(text, expected: "an http:// or https:// URL")
        }
        guard let rawHost = components.percentEncodedHost, let hostRange = components.rangeOfHost else {
            throw .malformedRule(text, expected: "an http:// or https:// URL")
        }
        if let port = components.port {
            guard (1...65535).contains(port) else { throw .malformedRule(text, expected: "a port between 1 and 65535") }
            self.port = port
        } else {
            port = isTLS ? 443 : 80
        }
        var connectHost = rawHost
        if connectHost.hasPrefix("["), connectHost.hasSuffix("]") {
            connectHost = String(connectHost.dropFirst().dropLast())
        }
        connectHost = connectHost.removingPercentEncoding ?? connectHost
        if connectHost.isEmpty || connectHost.lowercased() == "localhost" { connectHost = "127.0.0.1" }
        host = connectHost
        // The Host header keeps the URL's spelling (`localhost`, the port if written).
        hostHeader = rawHost.isEmpty ? "127.0.0.1" : String(url[hostRange])
        if let portRange = components.rangeOfPort { hostHeader += ":" + url[portRange] }

        let path = components.percentEncodedPath
        let query = components.percentEncodedQuery
        if (path.isEmpty || path == "/") && query == nil {
            pathAndQuery = nil
        } else {
            pathAndQuery = (path.isEmpty ? "/" : path) + (query.map { "?" + $0 } ?? "")
        }
        if let user = components.user {
            let userInfo = user + (components.password.map { ":" + $0 } ?? "")
            authorization = "Basic " + Data(userInfo.utf8).base64EncodedString()
        } else {
            authorization = nil
        }
    }

    /// Why `URLComponents` refused the address, in the terms of the old
    /// messages: an unclosed IPv6 bracket or a port that is not a number.
    private static func diagnose(_ text: String, url: String) -> ConfigurationError {
        let afterScheme = url[url.range(of: "://")!.upperBound...]
        let authority = afterScheme.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPort = authority.split(separator: "@", omittingEmptySubsequences: false).last ?? authority
        if hostPort.hasPrefix("["), !hostPort.contains("]") { return .malformedRule(text, expected: "[IPv6]:port") }
        let afterBracket = hostPort.lastIndex(of: "]").map { hostPort[$0...] } ?? hostPort
        if let colon = afterBracket.lastIndex(of: ":"), Int(afterBracket[afterBracket.index(after: colon)...]) == nil {
            return .malformedRule(text, expected: "a port between 1 and 65535")
        }
        return .malformedRule(text, expected: "an http:// or https:// URL")
    }

    public var description: String {
        "\(isTLS ? "https" : "http")://\(hostHeader)\(pathAndQuery ?? "")"
    }
}
