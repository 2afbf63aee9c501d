import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A real HTTP/1.1 server on 127.0.0.1:0 standing in for a site: each
/// request's path picks a behaviour (answer after a delay, answer 500, or
/// close the connection without answering).
final class SiteServer: Sendable {
    enum Behaviour: Sendable {
        case answer(status: Int, delayMilliseconds: Int64, body: String)
        case drop
    }

    let port: Int
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    private let counts = NIOLockedValueBox(0)

    /// - Parameter route: the behaviour for a request path.
    init(route: @escaping @Sendable (String) -> Behaviour) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let counts = self.counts
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(SiteHandler(route: route, counts: counts))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.group = group
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    var address: String { "127.0.0.1:\(port)" }
    var url: String { "http://127.0.0.1:\(port)" }
    /// Requests received.
    var requests: Int { counts.withLockedValue { $0 } }

    func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

private final class SiteHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let route: @Sendable (String) -> SiteServer.Behaviour
    let counts: NIOLockedValueBox<Int>
    var path = "/"

    init(route: @escaping @Sendable (String) -> SiteServer.Behaviour, counts: NIOLockedValueBox<Int>) {
        self.route = route
        self.counts = counts
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri
        case .body:
            break
        case .end:
            counts.withLockedValue { $0 += 1 }
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            switch route(path) {
            case .drop:
                context.close(promise: nil)
            case .answer(let status, let delay, let body):
                let respond: @Sendable () -> Void = {
                    let context = loopBound.value
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Length", value: String(body.utf8.count))
                    headers.add(name: "Content-Type", value: "text/plain")
                    let head = HTTPResponseHead(
                        version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
                    context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                    context.write(
                        self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))),
                        promise: nil)
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                }
                if delay == 0 {
                    respond()
                } else {
                    context.eventLoop.scheduleTask(in: .milliseconds(delay), respond)
                }
            }
        }
    }
}
