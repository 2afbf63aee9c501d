/// Why a PuppetDB query gave no answer. A failure is never reported as an empty node list.
public enum PuppetDBError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The base URL is not `http://host[:port][/prefix]` or `https://…`.
    case invalidURL(String)
    /// A class name that Puppet could not have declared, e.g. `gor,` or `9lives`.
    case invalidClassName(String)
    /// The CA, client certificate or client key could not be loaded.
    case tlsConfiguration(String)
    /// No TCP connection could be made (refused, unreachable, name not resolved).
    case connectionFailed(url: String, reason: String)
    /// The TLS handshake failed: untrusted server, refused client certificate, wrong host name.
    case tlsHandshakeFailed(url: String, reason: String)
    /// No complete response arrived within the client's timeout.
    case timedOut(url: String, seconds: Double)
    /// The server closed the connection before sending a complete response.
    case connectionClosed(url: String)
    /// The server answered with a status other than 200; `body` is its first 500 bytes.
    case httpStatus(url: String, status: Int, body: String)
    /// The response was not the JSON PuppetDB's v4 API documents.
    case malformedResponse(url: String, reason: String)
    /// The response body exceeded the client's size limit.
    case responseTooLarge(url: String, limit: Int)

    public var description: String {
        switch self {
        case .invalidURL(let url):
            return "invalid PuppetDB URL '\(url)': expected http(s)://host[:port][/prefix]"
        case .invalidClassName(let name):
            return "invalid Puppet class name '\(name)': expected names like gor or govuk::node::s_cache"
        case .tlsConfiguration(let reason):
            return "PuppetDB TLS settings: \(reason)"
        case .connectionFailed(let url, let reason):
            return "cannot connect to PuppetDB at \(url): \(reason)"
        case .tlsHandshakeFailed(let url, let reason):
            return "TLS handshake with PuppetDB at \(url) failed: \(reason)"
        case .timedOut(let url, let seconds):
            return "PuppetDB at \(url) did not answer within \(seconds) s"
        case .connectionClosed(let url):
            return "PuppetDB at \(url) closed the connection before answering"
        case .httpStatus(let url, let status, let body):
            return "PuppetDB at \(url) answered HTTP \(status): \(body)"
        case .malformedResponse(let url, let reason):
            return "unexpected answer from PuppetDB at \(url): \(reason)"
        case .responseTooLarge(let url, let limit):
            return "answer from PuppetDB at \(url) is larger than \(limit) bytes"
        }
    }
}
