import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves `GET /metrics` (Prometheus text format 0.0.4) on one address;
/// anything else is 404, other methods 405.
public final class MetricsServer: Sendable {
    /// The bound address, e.g. `127.0.0.1:9091` (the real port when 0 was asked).
    public let boundAddress: String
    private let channel: any Channel

    /// Binds now, so a busy port or bad address fails before replay starts.
    public static func start(address: MetricsAddress, metrics: MirrorMetrics, group: any EventLoopGroup) async throws
        -> MetricsServer
    {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(metrics: metrics))
                }
            }
            .bind(host: address.host, port: address.port).get()
        return MetricsServer(channel: channel, host: address.host)
    }

    private init(channel: any Channel, host: String) {
        self.channel = channel
        let port = channel.localAddress?.port ?? 0
        boundAddress = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public func stop() async {
        try? await channel.close()
    }
}

/// `--metrics` address: `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces).
public struct MetricsAddress: Sendable, Equatable {
    public var host: String
    public var port: Int

    public init(parsing text: String) throws(MetricsAddressError) {
        guard let colon = text.lastIndex(of: ":") else { throw MetricsAddressError(text: text) }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw MetricsAddressError(text: text)
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }
}

public struct MetricsAddressError: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var description: String {
        "give HOST:PORT, e.g. 127.0.0.1:9091, or :9091 for all interfaces"
    }
}

private final class MetricsHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let metrics: MirrorMetrics

    init(metrics: MirrorMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let status: HTTPResponseStatus
        var body: [UInt8]
        var contentType = "text/plain; charset=utf-8"
        if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            body = Array("only GET /metrics\n".utf8)
        } else if path == "/metrics" {
            status = .ok
            body = metrics.exposition()
            contentType = "text/plain; version=0.0.4; charset=utf-8"
        } else {
            status = .notFound
            body = Array("see /metrics\n".utf8)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        if request.method == .HEAD { body = [] }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
            promise: nil)
        if !body.isEmpty {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
