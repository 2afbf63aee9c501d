import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The parts of a base URL the client needs.
struct ServerAddress: Sendable, Equatable {
    var useTLS: Bool
    var host: String
    var port: Int
    /// Path prefix without a trailing slash ("" for none), e.g. "/puppetdb".
    var pathPrefix: String

    init(parsing text: String) throws(PuppetDBError) {
        var rest: Substring
        if text.hasPrefix("http://") {
            useTLS = false
            rest = Substring(text).dropFirst("http://".count)
        } else if text.hasPrefix("https://") {
            useTLS = true
            rest = Substring(text).dropFirst("https://".count)
        } else {
            throw .invalidURL(text)
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<slash]
        var prefix = String(rest[slash...])
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if prefix.contains("?") || prefix.contains("#") || authority.contains("@") { throw .invalidURL(text) }
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL(text) }
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidURL(text) }
                portText = after.dropFirst()
            }
            authority = authority[authority.index(after: authority.startIndex)..<close]
        } else if let colon = authority.firstIndex(of: ":") {
            portText = authority[authority.index(after: colon)...]
            authority = authority[..<colon]
        }
        guard !authority.isEmpty else { throw .invalidURL(text) }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { throw .invalidURL(text) }
            self.port = port
        } else {
            port = useTLS ? 443 : 80
        }
        host = String(authority)
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

/// A one-request-per-connection HTTP/1.1 GET over SwiftNIO, with a hard overall deadline.
struct HTTPGetter: Sendable {
    let address: ServerAddress
    let sslContext: NIOSSLContext?
    let timeout: TimeAmount
    let maximumBodySize: Int
    let group: any EventLoopGroup

    /// Fetches `path` (already percent-encoded, starting with "/"). Returns status and body.
    func get(_ path: String) async throws(PuppetDBError) -> (status: Int, body: ByteBuffer) {
        let url = address.url(path)
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: (Int, ByteBuffer).self)
        // Everything that can complete the request runs on `eventLoop`; the flag makes the
        // first outcome win (a promise must be completed exactly once).
        let completed = NIOLoopBoundBox.makeBoxSendingValue(false, as: Bool.self, eventLoop: eventLoop)
        let channelBox = NIOLoopBoundBox.makeEmptyBox(valueType: (any Channel).self, eventLoop: eventLoop)
        let finish: @Sendable (Result<(Int, ByteBuffer), PuppetDBError>) -> Void = { result in
            guard !completed.value else { return }
            completed.value = true
            promise.completeWith(result.mapError { $0 as any Error })
            channelBox.value?.close(promise: nil)
        }
        let seconds = Double(timeout.nanoseconds) / 1e9
        let deadline = eventLoop.scheduleTask(in: timeout) {
            finish(.failure(.timedOut(url: url, seconds: seconds)))
        }

        let sslContext = self.sslContext
        let serverHostname = address.isIPAddress ? nil : address.host
        let limit = maximumBodySize
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                    }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(ResponseCollector(url: url, limit: limit, finish: finish))
                }
            }
        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: address.pathPrefix + path,
            headers: ["Host": address.hostHeader, "Accept": "application/json", "Connection": "close",
                      "User-Agent": "govuk-fab"])
        bootstrap.connect(host: address.host, port: address.port).whenComplete { result in
            switch result {
            case .failure(let error):
                finish(.failure(Self.classify(error, url: url, seconds: seconds)))
            case .success(let channel):
                guard !completed.value else {
                    channel.close(promise: nil)
                    return
                }
                channelBox.value = channel
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
        }
        do {
            let (status, body) = try await promise.futureResult.get()
            deadline.cancel()
            return (status, body)
        } catch let error as PuppetDBError {
            deadline.cancel()
            throw error
        } catch {
            deadline.cancel()
            throw Self.classify(error, url: url, seconds: seconds)
        }
    }

    static func classify(_ error: any Error, url: String, seconds: Double) -> PuppetDBError {
        if let error = error as? PuppetDBError { return error }
        if error is ChannelError, case .connectTimeout = error as? ChannelError {
            return .timedOut(url: url, seconds: seconds)
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

/// Collects one HTTP response and reports it (or the failure) through `finish`.
final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let url: String
    private let limit: Int
    private let finish: @Sendable (Result<(Int, ByteBuffer), PuppetDBError>) -> Void
    private var status: Int?
    private var body = ByteBuffer()

    init(url: String, limit: Int, finish: @escaping @Sendable (Result<(Int, ByteBuffer), PuppetDBError>) -> Void) {
        self.url = url
        self.limit = limit
        self.finish = finish
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(var chunk):
            if body.readableBytes + chunk.readableBytes > limit {
                finish(.failure(.responseTooLarge(url: url, limit: limit)))
                return
            }
            body.writeBuffer(&chunk)
        case .end:
            if let status {
                finish(.success((status, body)))
            } else {
                finish(.failure(.malformedResponse(url: url, reason: "response without a status line")))
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            finish(.failure(.malformedResponse(url: url, reason: "not HTTP: \(error)")))
        } else {
            finish(.failure(HTTPGetter.classify(error, url: url, seconds: 0)))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(.connectionClosed(url: url)))
        context.fireChannelInactive()
    }
}
