import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The parts of a base URL the client needs, read by Foundation's `URLComponents`.
struct ServerAddress: Sendable, Equatable {
    var useTLS: Bool
    var host: String
    var port: Int
    /// Percent-encoded path prefix without a trailing slash ("" for none), e.g. "/puppetdb".
    var pathPrefix: String

    /// Accepts `http(s)://host[:port][/prefix]`; user info, a query or a fragment would be
    /// silently dropped from every request, so they are refused instead.
    init(parsing text: String) throws(PuppetDBError) {
        guard let components = URLComponents(string: text) else { throw .invalidURL(text) }
        switch components.scheme {
        case "http": useTLS = false
        case "https": useTLS = true
        default: throw .invalidURL(text)
        }
        guard components.user == nil, components.password == nil, components.query == nil,
            components.fragment == nil, var host = components.host, !host.isEmpty
        else { throw .invalidURL(text) }
        // An IPv6 literal may come back in its brackets; sockets and SNI want it bare.
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        // `URLComponents` reads "http://h:" (a colon, no digits) as no port; a typo should not mean 80.
        let authority = text.dropFirst("\(components.scheme ?? "")://".count).prefix { $0 != "/" }
        if components.port == nil, authority.hasSuffix(":") { throw .invalidURL(text) }
        let port = components.port ?? (useTLS ? 443 : 80)
        guard (1...65535).contains(port) else { throw .invalidURL(text) }
        var prefix = components.percentEncodedPath
        while prefix.hasSuffix("/") { prefix.removeLast() }
        self.host = host
        self.port = port
        pathPrefix = prefix
    }

    var isIPAddress: Bool { (try? SocketAddress(ipAddress: host, port: port)) != nil }

    /// `Host:` header value.
    var hostHeader: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let defaultPort = useTLS ? 443 : 80
        return port == defaultPort ? shownHost : "\(shownHost):\(port)"
    }

    func url(_ path: String) -> String {
        "\(useTLS ? "https" : "http")://\(hostHeader)\(pathPrefix)\(path)"
    }
}

/// A one-request-per-connection HTTP/1.1 GET on a `NIOAsyncChannel`, with a hard overall deadline.
struct HTTPGetter: Sendable {
    let address: ServerAddress
    let sslContext: NIOSSLContext?
    let timeout: Duration
    let maximumBodySize: Int
    let group: any EventLoopGroup

    /// The timeout as reported in `PuppetDBError.timedOut`.
    var timeoutSeconds: Double { Double(TimeAmount(timeout).nanoseconds) / 1e9 }

    /// Fetches `path` (already percent-encoded, starting with "/"). Returns status and body.
    func get(_ path: String) async throws(PuppetDBError) -> (status: Int, body: ByteBuffer) {
        let url = address.url(path)
        let seconds = timeoutSeconds
        do {
            // The exchange races the deadline; whichever ends first decides, and the loser is
            // cancelled (the exchange's inbound stream ends on cancellation and the channel closes).
            return try await withThrowingTaskGroup(of: (status: Int, body: ByteBuffer).self) { race in
                race.addTask { try await exchange(path, url: url) }
                race.addTask {
                    try await Task.sleep(for: timeout)
                    throw PuppetDBError.timedOut(url: url, seconds: seconds)
                }
                defer { race.cancelAll() }
                // Both tasks either return or throw, so the first result is always there.
                guard let first = try await race.next() else {
                    throw PuppetDBError.timedOut(url: url, seconds: seconds)
                }
                return first
            }
        } catch {
            throw Self.classify(error, url: url, seconds: seconds)
        }
    }

    /// Connects, sends the request and collects the response within the size limit.
    private func exchange(_ path: String, url: String) async throws -> (status: Int, body: ByteBuffer) {
        let sslContext = self.sslContext
        let serverHostname = address.isIPAddress ? nil : address.host
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(timeout))
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                    }
                    try sync.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: address.pathPrefix + path,
            headers: [
                "Host": address.hostHeader, "Accept": "application/json", "Connection": "close",
                "User-Agent": "govuk-fab",
            ])
        let limit = maximumBodySize
        return try await channel.executeThenClose { inbound, outbound in
            do {
                try await outbound.write(contentsOf: [.head(head), .end(nil)])
            } catch {
                // The channel already failed or closed; reading says why (TLS alert, hang-up).
            }
            var status: Int?
            var body = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let head):
                    status = Int(head.status.code)
                case .body(var chunk):
                    guard body.readableBytes + chunk.readableBytes <= limit else {
                        throw PuppetDBError.responseTooLarge(url: url, limit: limit)
                    }
                    body.writeBuffer(&chunk)
                case .end:
                    guard let status else {
                        throw PuppetDBError.malformedResponse(url: url, reason: "response without a status line")
                    }
                    return (status, body)
                }
            }
            throw PuppetDBError.connectionClosed(url: url)
        }
    }

    static func classify(_ error: any Error, url: String, seconds: Double) -> PuppetDBError {
        if let error = error as? PuppetDBError { return error }
        if error is ChannelError, case .connectTimeout = error as? ChannelError {
            return .timedOut(url: url, seconds: seconds)
        }
        if error is HTTPParserError {
            return .malformedResponse(url: url, reason: "not HTTP: \(error)")
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return .tlsHandshakeFailed(url: url, reason: "\(error)")
        }
        if let connect = error as? NIOConnectionError {
            let reasons = connect.connectionErrors.map { "\($0.target): \($0.error)" }
            if let dns = connect.dnsAAAAError ?? connect.dnsAError, reasons.isEmpty {
                return .connectionFailed(url: url, reason: "cannot resolve host: \(dns)")
            }
            return .connectionFailed(url: url, reason: reasons.isEmpty ? "\(connect)" : reasons.joined(separator: "; "))
        }
        if let io = error as? IOError {
            return .connectionFailed(url: url, reason: io.description)
        }
        return .connectionFailed(url: url, reason: "\(error)")
    }
}
